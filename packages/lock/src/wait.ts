import { AbortError, fullJitterBackoff, isConnectionError, type Notifier } from '@rp/core'
import { LockTimeoutError } from './errors.js'

/** Delay before retry `attempt`: full jitter, 10 ms doubling to a 1 s cap, never past `remainingMs`. */
const backoff = fullJitterBackoff(10, 1_000)
export function retryDelay(attempt: number, remainingMs: number, hintMs?: number): number {
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
  /** Wake only on this message (the waiter's id); default: any message on the channel. */
  message?: string
  /** Undo what a failed attempt left behind (a writer's intent) when the caller gives up. */
  abandon?: () => Promise<unknown>
}

/**
 * The waiting loop every primitive shares: try; on failure subscribe to the release channel and
 * try once more (closing the gap between the two); then sleep until a release message or a
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
    // A release that lands while this attempt runs must still wake the wait that follows it.
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
    if (attempt === 0 && !lastError) {
      await loop.notifier.listen(loop.channel)
      continue
    }
    await loop.notifier.wait(loop.channel, retryDelay(attempt, remaining, hint), {
      signal: loop.signal,
      since: startedAt,
      ...(loop.message === undefined ? {} : { message: loop.message }),
    })
  }
}
