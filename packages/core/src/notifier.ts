import { guarded } from './callbacks.js'
import { isCluster, type RedisClient } from './client.js'
import { AbortError } from './errors.js'
import { shutdown } from './shutdown.js'
import { withTimeout } from './timeout.js'

interface Waiter {
  message: string | undefined
  wake: () => void
}

/**
 * Wakes waiters on pub/sub messages: one subscriber connection (a duplicate of the client, made on
 * first use), subscribed to a channel only while someone waits on it. Every wait also ends by its
 * timeout, so if the subscriber is down, waiting degrades to polling instead of hanging. Locks use
 * it to wake on release, the cache to wake on a loaded value.
 */
export class Notifier {
  readonly #redis: RedisClient
  #subscriber: RedisClient | null = null
  readonly #waiters = new Map<string, Set<Waiter>>()
  readonly #subscribed = new Map<string, Promise<unknown>>()
  readonly #active = new Set<string>()
  readonly #idleTimers = new Map<string, NodeJS.Timeout>()
  // The last few messages per channel, so a message that lands while its waiter is busy (between
  // two waits, running an attempt) is not lost: the next wait sees it and returns at once.
  readonly #recent = new Map<string, Array<{ message: string; at: number }>>()

  constructor(redis: RedisClient) {
    this.#redis = redis
  }

  #connection(): RedisClient {
    if (!this.#subscriber) {
      // The app's client may turn autoResubscribe off (it has no subscriptions of its own); ours
      // must keep it, or every wake-up is lost after a reconnect and waits fall back to polling.
      const sub = isCluster(this.#redis)
        ? this.#redis.duplicate()
        : this.#redis.duplicate({ autoResubscribe: true })
      sub.on('error', () => {})
      sub.on(
        'message',
        guarded('core', 'notifier.message', (channel: string, message: string) => {
          const recent = this.#recent.get(channel) ?? []
          recent.push({ message, at: performance.now() })
          if (recent.length > 16) recent.shift()
          this.#recent.set(channel, recent)
          for (const waiter of this.#waiters.get(channel) ?? []) {
            if (waiter.message === undefined || waiter.message === message) waiter.wake()
          }
        }),
      )
      this.#subscriber = sub
    }
    return this.#subscriber
  }

  /**
   * Subscribes (once) to `channel`; resolves when the subscription is active, has failed, or
   * `timeoutMs` has passed (never rejects: a wait without a subscription degrades to polling).
   */
  async listen(channel: string, timeoutMs = 1_000): Promise<void> {
    let pending = this.#subscribed.get(channel)
    if (!pending) {
      pending = this.#connection()
        .subscribe(channel)
        .then(
          () => this.#active.add(channel),
          () => this.#subscribed.delete(channel),
        )
      this.#subscribed.set(channel, pending)
    }
    await withTimeout(pending, timeoutMs, 'subscribe').catch(() => {})
  }

  /**
   * True once a subscription to `channel` is active: a message published from then on reaches
   * wait(), so a caller that checked this before its attempt need not try again after listen().
   */
  isListening(channel: string): boolean {
    return this.#active.has(channel)
  }

  /**
   * Resolves after `ms`, or as soon as a message arrives on `channel` (equal to `message`, when
   * given); rejects with AbortError when `signal` aborts. With `since` (a performance.now() time,
   * typically when the caller's last attempt started), a matching message that arrived after it
   * resolves at once. Call listen() first so no message is missed.
   */
  wait(
    channel: string,
    ms: number,
    options: { signal?: AbortSignal | undefined; message?: string; since?: number } = {},
  ): Promise<void> {
    const { signal } = options
    if (options.since !== undefined && !signal?.aborted) {
      const since = options.since
      const missed = this.#recent
        .get(channel)
        ?.some((m) => m.at >= since && (options.message === undefined || m.message === options.message))
      if (missed) return Promise.resolve()
    }
    return new Promise<void>((resolve, reject) => {
      const waiters = this.#waiters.get(channel) ?? new Set<Waiter>()
      this.#waiters.set(channel, waiters)
      const waiter: Waiter = { message: options.message, wake: () => finish(() => resolve()) }
      const onAbort = () => finish(() => reject(new AbortError('wait', { cause: signal?.reason })))
      const timer = setTimeout(waiter.wake, ms)
      function finish(settle: () => void) {
        clearTimeout(timer)
        signal?.removeEventListener('abort', onAbort)
        waiters.delete(waiter)
        settle()
      }
      waiters.add(waiter)
      if (signal?.aborted) onAbort()
      else signal?.addEventListener('abort', onAbort, { once: true })
    }).finally(() => {
      if (this.#waiters.get(channel)?.size === 0) this.#drop(channel)
    })
  }

  // Unsubscribe only after the channel has been idle a while: a waiter loop waits again right after
  // each wake-up, and churning SUBSCRIBE/UNSUBSCRIBE would open windows where releases are missed.
  // One pending timer per channel, however many waits end.
  #drop(channel: string): void {
    if (this.#idleTimers.has(channel)) return
    const timer = setTimeout(
      guarded('core', 'notifier.idle', () => {
        this.#idleTimers.delete(channel)
        if ((this.#waiters.get(channel)?.size ?? 0) > 0) return
        this.#waiters.delete(channel)
        this.#recent.delete(channel)
        this.#active.delete(channel)
        if (this.#subscribed.delete(channel)) this.#subscriber?.unsubscribe(channel).catch(() => {})
      }),
      5_000,
    )
    timer.unref()
    this.#idleTimers.set(channel, timer)
  }

  async close(): Promise<void> {
    for (const timer of this.#idleTimers.values()) clearTimeout(timer)
    this.#idleTimers.clear()
    const sub = this.#subscriber
    this.#subscriber = null
    this.#subscribed.clear()
    this.#active.clear()
    // Bounded: QUIT to a paused server never answers, and close() must still settle.
    if (sub) await shutdown(sub, { timeoutMs: 1_000 })
  }
}
