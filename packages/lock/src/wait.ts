import { AbortError, fullJitterBackoff, isConnectionError, type RedisClient } from '@rp/core'
import { LockTimeoutError } from './errors.js'

/**
 * Wakes waiters when a holder releases: one subscriber connection per manager, subscribed to a
 * resource's channel only while someone waits on it. If the subscriber is down, waits still end by
 * their timeout, so waiting degrades to jittered backoff instead of hanging.
 */
export class ReleaseNotifier {
  readonly #redis: RedisClient
  #subscriber: RedisClient | null = null
  readonly #waiters = new Map<string, Set<() => void>>()
  readonly #subscribed = new Map<string, Promise<unknown>>()

  constructor(redis: RedisClient) {
    this.#redis = redis
  }

  #connection(): RedisClient {
    if (!this.#subscriber) {
      const sub = this.#redis.duplicate()
      sub.on('error', () => {})
      sub.on('message', (channel: string) => {
        for (const wake of this.#waiters.get(channel) ?? []) wake()
      })
      this.#subscriber = sub
    }
    return this.#subscriber
  }

  /** Subscribes (once) to `channel`; resolves when the subscription is active or has failed. */
  async listen(channel: string): Promise<void> {
    let pending = this.#subscribed.get(channel)
    if (!pending) {
      pending = this.#connection()
        .subscribe(channel)
        .catch(() => this.#subscribed.delete(channel))
      this.#subscribed.set(channel, pending)
    }
    await pending
  }

  /** Resolves after `ms`, on a release message on `channel`, or rejects on abort. */
  wait(channel: string, ms: number, signal?: AbortSignal): Promise<void> {
    return new Promise((resolve, reject) => {
      let set = this.#waiters.get(channel)
      if (!set) this.#waiters.set(channel, (set = new Set()))
      const waiters = set
      const done = () => {
        clearTimeout(timer)
        signal?.removeEventListener('abort', onAbort)
        waiters.delete(done)
        if (waiters.size === 0) this.#drop(channel)
      }
      const wake = () => {
        done()
        resolve()
      }
      const onAbort = () => {
        done()
        reject(new AbortError('lock wait', { cause: signal?.reason }))
      }
      const timer = setTimeout(wake, ms)
      waiters.add(wake)
      if (signal?.aborted) onAbort()
      else signal?.addEventListener('abort', onAbort, { once: true })
    })
  }

  #drop(channel: string): void {
    this.#waiters.delete(channel)
    if (this.#subscribed.delete(channel)) this.#subscriber?.unsubscribe(channel).catch(() => {})
  }

  async close(): Promise<void> {
    const sub = this.#subscriber
    this.#subscriber = null
    this.#subscribed.clear()
    if (sub) await sub.quit().catch(() => sub.disconnect())
  }
}

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
  notifier: ReleaseNotifier
  /** One attempt: the value, or null with a hint of how long the current holder has left. */
  attempt: () => Promise<{ value: T | null; hintMs?: number }>
  /** Why it timed out when Redis was fine, e.g. "all 5 permits held". */
  busy?: string
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
    await loop.notifier.wait(loop.channel, retryDelay(attempt, remaining, hint), loop.signal)
  }
}
