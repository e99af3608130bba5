import { fullJitterBackoff } from './connection.js'
import { AbortError, isConnectionError } from './errors.js'
import type { Notifier } from './notifier.js'

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
  /** Longest the subscription may take before waiting degrades to polling; default: what is left of waitMs. */
  subscribeTimeoutMs?: number
}

/**
 * Waits for something a release frees (a lock, a permit, a lease): try; on failure subscribe to
 * the release channel and, if it was not subscribed already, try once more (closing the gap
 * between the two); then sleep until a release message or a jittered backoff (never past the
 * attempt's hint), within waitMs and the signal. On giving up, the error comes first and `abandon`
 * runs after it, in the background (bounded by the caller's own guard).
 */
export function waitForRelease<T>(loop: WaitLoop<T>): Promise<T> {
  if (loop.signal?.aborted) return Promise.reject(new AbortError(loop.what, { cause: loop.signal.reason }))
  const deadline = performance.now() + loop.waitMs
  // Most calls find it free: one attempt, before any of the waiting machinery.
  const first: Attempt = { listening: loop.notifier.isListening(loop.channel), startedAt: performance.now() }
  return loop.attempt().then(
    (r) => (r.value !== null ? r.value : wait(loop, deadline, { ...first, hint: r.hintMs })),
    (error: unknown) => wait(loop, deadline, { ...first, error, failed: true }),
  )
}

/** What the attempt before a wait found. */
interface Attempt {
  listening: boolean
  startedAt: number
  hint?: number | undefined
  failed?: boolean
  error?: unknown
}

async function wait<T>(loop: WaitLoop<T>, deadline: number, first: Attempt): Promise<T> {
  try {
    return await waitLoop(loop, deadline, first)
  } catch (error) {
    // Cleanup runs on its own: the caller's answer is due at waitMs, and with Redis paused an
    // awaited abandon held it one more timeoutMs. It is bounded by the guard, and cannot reject.
    try {
      loop.abandon?.().catch(() => {})
    } catch {
      // An abandon that throws synchronously leaves nothing behind to clean up.
    }
    throw error
  }
}

async function waitLoop<T>(loop: WaitLoop<T>, deadline: number, first: Attempt): Promise<T> {
  const backoff = loop.backoff ?? defaultBackoff
  let last = first
  for (let attempt = 0; ; attempt++) {
    let lastError: unknown
    if (last.failed) {
      if (!loop.retryConnectionErrors || !isConnectionError(last.error)) throw last.error
      lastError = last.error
    }
    const remaining = deadline - performance.now()
    if (remaining <= 0) throw loop.timeout(lastError)
    if (!last.listening && !last.failed) {
      // Bounded: a subscriber that cannot connect must not outlast waitMs; polling covers it.
      const bound = Math.min(remaining, loop.subscribeTimeoutMs ?? remaining)
      await loop.notifier.listen(loop.channel, Math.max(1, Math.ceil(bound)))
    }
    // Subscribed only now, a release may have landed between the last attempt and the
    // subscription: try again at once. Subscribed before it, a release during it still ends the
    // wait below (the notifier keeps recent messages).
    if (last.listening || last.failed || !loop.notifier.isListening(loop.channel)) {
      const jittered = Math.max(1, backoff(attempt))
      const hint = last.hint
      const delay = Math.min(remaining, hint === undefined ? jittered : Math.min(jittered, Math.max(1, hint)))
      await loop.notifier.wait(loop.channel, delay, {
        signal: loop.signal,
        since: last.startedAt,
        ...(loop.message === undefined ? {} : { message: loop.message }),
      })
    }
    if (loop.signal?.aborted) throw new AbortError(loop.what, { cause: loop.signal.reason })
    last = { listening: loop.notifier.isListening(loop.channel), startedAt: performance.now() }
    try {
      const r = await loop.attempt()
      if (r.value !== null) return r.value
      last.hint = r.hintMs
    } catch (error) {
      last.failed = true
      last.error = error
    }
  }
}
