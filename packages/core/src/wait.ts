import { fullJitterBackoff } from './connection.js'
import { AbortError, isConnectionError } from './errors.js'
import type { Notifier } from './notifier.js'
import { withTimeout } from './timeout.js'

/** Full jitter, 10 ms doubling to a 1 s cap. */
const defaultBackoff = fullJitterBackoff(10, 1_000)

export interface WaitLoop<T> {
  /** Names what is awaited in AbortError messages, e.g. `acquire 'order:42'`. */
  what: string
  waitMs: number
  signal?: AbortSignal | undefined
  /** The pub/sub channel a release is published on. */
  channel: string
  notifier: Notifier
  /** One attempt: the value, or null with a hint of how long until it may be free. */
  attempt: () => Promise<{ value: T | null; hintMs?: number }>
  /** The error thrown when waitMs runs out; `lastError` is the last attempt's connection error. */
  timeout: (lastError: unknown) => Error
  /** Retry attempts that fail for a connection error until the deadline; default: they throw. */
  retryConnectionErrors?: boolean
  /** Delay before retry `attempt` when no wake-up came; default 10 ms doubling to 1 s, full jitter. */
  backoff?: (attempt: number) => number
  /** Wake only on this message (the waiter's id); default: any message on the channel. */
  message?: string
  /** Undo what a failed attempt left behind (a queue place, a writer's intent) when giving up. */
  abandon?: () => Promise<unknown>
}

/**
 * Waits for something a release frees (a lock, a permit, a lease): try; on failure subscribe to
 * the release channel and, if it was not subscribed already, try once more (closing the gap
 * between the two); then sleep until a release message or a jittered backoff (never past the
 * attempt's hint), within waitMs and the signal. On giving up, `abandon` runs before the error.
 */
export async function waitForRelease<T>(loop: WaitLoop<T>): Promise<T> {
  try {
    return await waitLoop(loop)
  } catch (error) {
    await loop.abandon?.().catch(() => {})
    throw error
  }
}

async function waitLoop<T>(loop: WaitLoop<T>): Promise<T> {
  const deadline = performance.now() + loop.waitMs
  const backoff = loop.backoff ?? defaultBackoff
  let lastError: unknown
  for (let attempt = 0; ; attempt++) {
    if (loop.signal?.aborted) throw new AbortError(loop.what, { cause: loop.signal.reason })
    let hint: number | undefined
    // Subscribed before the attempt, a release that lands while it runs still wakes the wait that
    // follows (the notifier keeps recent messages); otherwise the attempt must be repeated once
    // the subscription is active.
    const listening = loop.notifier.isListening(loop.channel)
    const startedAt = performance.now()
    try {
      const r = await loop.attempt()
      if (r.value !== null) return r.value
      hint = r.hintMs
      lastError = undefined
    } catch (error) {
      if (!loop.retryConnectionErrors || !isConnectionError(error)) throw error
      lastError = error
    }
    const remaining = deadline - performance.now()
    if (remaining <= 0) throw loop.timeout(lastError)
    if (!listening && !lastError) {
      // Bounded: a subscriber that cannot connect must not outlast waitMs; polling covers it.
      await withTimeout(loop.notifier.listen(loop.channel), remaining, 'subscribe').catch(() => {})
      if (loop.notifier.isListening(loop.channel)) continue
    }
    const jittered = Math.max(1, backoff(attempt))
    const delay = Math.min(remaining, hint === undefined ? jittered : Math.min(jittered, Math.max(1, hint)))
    await loop.notifier.wait(loop.channel, delay, {
      signal: loop.signal,
      since: startedAt,
      ...(loop.message === undefined ? {} : { message: loop.message }),
    })
  }
}
