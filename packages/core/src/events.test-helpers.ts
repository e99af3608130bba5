import { subscribe, unsubscribe } from 'node:diagnostics_channel'
import { EVENT_CHANNEL, type RpEvent } from './instrumentation.js'

/**
 * Runs `fn` while recording every rp:event and every uncaught exception or unhandled rejection,
 * so a test can show that a failing callback became an event and nothing escaped.
 */
export async function watchEvents(
  fn: (seen: { events: RpEvent[]; uncaught: unknown[] }) => Promise<void>,
): Promise<void> {
  const seen = { events: [] as RpEvent[], uncaught: [] as unknown[] }
  const onEvent = (e: unknown) => seen.events.push(e as RpEvent)
  const onUncaught = (e: unknown) => seen.uncaught.push(e)
  subscribe(EVENT_CHANNEL, onEvent)
  process.on('uncaughtException', onUncaught)
  process.on('unhandledRejection', onUncaught)
  try {
    await fn(seen)
  } finally {
    unsubscribe(EVENT_CHANNEL, onEvent)
    process.off('uncaughtException', onUncaught)
    process.off('unhandledRejection', onUncaught)
  }
}
