import { AbortError, fullJitterBackoff, isConnectionError, type Notifier, withTimeout } from '@rp/core'
import { LockTimeoutError } from './errors.js'

/** Full jitter, 10 ms doubling to a 1 s cap. */
const defaultBackoff = fullJitterBackoff(10, 1_000)

/** Delay before retry `attempt`: the backoff, never past `remainingMs` or the holder's `hintMs`. */
export function retryDelay(
  attempt: number,
  remainingMs: number,
  hintMs?: number,
  backoff: (attempt: number) => number = defaultBackoff,
): number {
  const jittered = Math.max(1, backoff(attempt))
  return Math.max(0, Math.min(remainingMs, hintMs === undefined ? jittered : Math.min(jittered, hintMs)))
}

export interface WaitLoop<T> {
  /** Names the resource in errors. */
  resource: string
  waitMs: number
  signal?: AbortSignal | undefined
  channel: string
  notifier: Notifier
  /** One attempt: the value, or null with a hint of how long the current holder has left. */
  attempt: () => Promise<{ value: T | null; hintMs?: number }>
  /** Why it timed out when Redis was fine, e.g. "all 5 permits held". */
  busy?: string
  /** Delay before retry `attempt` when no wake-up came; default 10 ms doubling to 1 s, full jitter. */
  backoff?: (attempt: number) => number
  /** Wake only on this message (the waiter's id); default: any message on the channel. */
  message?: string
  /** Undo what a failed attempt left behind (a writer's intent) when the caller gives up. */
  abandon?: () => Promise<unknown>
}

/**
 * The waiting loop every primitive shares: try; on failure subscribe to the release channel and, if
 * it was not subscribed already, try once more (closing the gap between the two); then sleep until a release message or a
 * jittered backoff, within waitMs and the signal. Connection errors are retried until the deadline.
 */
export async function acquireWithWait<T>(loop: WaitLoop<T>): Promise<T> {
  try {
    return await waitLoop(loop)
  } catch (error) {
    await loop.abandon?.().catch(() => {})
    throw error
  }
}

async function waitLoop<T>(loop: WaitLoop<T>): Promise<T> {
  const deadline = performance.now() + loop.waitMs
  let lastError: unknown
  for (let attempt = 0; ; attempt++) {
    if (loop.signal?.aborted)
      throw new AbortError(`acquire '${loop.resource}'`, { cause: loop.signal.reason })
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
      if (!isConnectionError(error)) throw error
      lastError = error
    }
    const remaining = deadline - performance.now()
    if (remaining <= 0) {
      const detail = lastError ? `Redis unavailable: ${(lastError as Error).message}` : (loop.busy ?? '')
      throw new LockTimeoutError(loop.resource, loop.waitMs, detail, { cause: lastError })
    }
    if (!listening && !lastError) {
      // Bounded: a subscriber that cannot connect must not outlast waitMs; polling covers it.
      await withTimeout(loop.notifier.listen(loop.channel), remaining, 'subscribe').catch(() => {})
      if (loop.notifier.isListening(loop.channel)) continue
    }
    await loop.notifier.wait(loop.channel, retryDelay(attempt, remaining, hint, loop.backoff), {
      signal: loop.signal,
      since: startedAt,
      ...(loop.message === undefined ? {} : { message: loop.message }),
    })
  }
}
