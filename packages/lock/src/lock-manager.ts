import { randomUUID } from 'node:crypto'
import { EventEmitter } from 'node:events'
import {
  AbortError,
  assertUsableClient,
  Deadlines,
  fullJitterBackoff,
  guarded,
  instrument,
  isConnectionError,
  type Keyspace,
  keyspace,
  Notifier,
  promised,
  publishEvent,
  type RedisClient,
  requireBoolean,
  requireFunction,
  requireNonEmptyString,
  requireNonNegativeInteger,
  requireOptions,
  requireSignal,
  requireTimeoutMs,
} from '@rp/core'
import { LockLostError } from './errors.js'
import { Lock } from './lock.js'
import { abandonScript, acquireScript } from './scripts.js'
import { acquireWithWait } from './wait.js'

const queuedBackoff = fullJitterBackoff(100, 1_000)

export interface LockManagerOptions {
  redis: RedisClient
  /** Key namespace; default `lock`. */
  prefix?: string
  /** Default lock TTL; default 30000. */
  ttlMs?: number
  /** Default wait for acquire(); default 10000. */
  waitMs?: number
  /** Longest a single Redis call may take; default 1000. */
  timeoutMs?: number
  /** How long the fencing counter outlives the last acquire; default 7 days. */
  fenceTtlMs?: number
  /**
   * How long a released lock stays reserved for the waiter it wakes; default 250. Keeps the
   * hand-off in queue order; a waiter that died costs the others this long, plus one poll.
   */
  handoffMs?: number
}

export interface AcquireOptions {
  ttlMs?: number
  /** How long to wait for the lock; 0 tries once. */
  waitMs?: number
  signal?: AbortSignal
  /** Reentrancy (opt-in): the same `owner` may acquire again; each acquire needs its own release. */
  reentrant?: boolean
  /** The owner id; default a random UUID per acquire. */
  owner?: string
}

/** @internal What a Lock needs from its manager. */
export interface LockManagerInternals {
  readonly redis: RedisClient
  readonly timeoutMs: number
  readonly defaultTtlMs: number
  readonly handoffMs: number
  /** Bounds every call by timeoutMs, with one timer for all of them. */
  readonly deadlines: Deadlines
  lockKey(resource: string): string
  queueKey(resource: string): string
  channel(resource: string): string
  validateTtl(ttlMs: number): number
  unwatch(lock: Lock): void
}

interface Watched {
  ttlMs: number
  /** When the next renewal is due (performance.now()); Infinity while one is in flight. */
  nextAt: number
  controller: AbortController
  lost?: LockLostError
}

/**
 * On the monotonic clock, when the watchdog gives up on a lock: a third of its TTL before it may
 * lapse. By then `fn` has been told (its signal aborted), whatever a renewal in flight is doing, so
 * it still has that third to stop before anyone else can take the lock.
 */
function abortAt(lock: Lock, w: Watched): number {
  return lock.validUntil - w.ttlMs / 3
}

export interface LockManagerEvents {
  lost: [error: LockLostError, lock: Lock]
}

/**
 * Distributed locks with fencing tokens. Acquire, extend and release are one Lua script each;
 * waiters are woken by pub/sub when a holder releases.
 */
export class LockManager extends EventEmitter<LockManagerEvents> implements LockManagerInternals {
  readonly redis: RedisClient
  readonly timeoutMs: number
  readonly defaultTtlMs: number
  readonly handoffMs: number
  readonly deadlines: Deadlines
  readonly #defaultWaitMs: number
  readonly #fenceTtlMs: number
  readonly #keyspace: Keyspace
  readonly #notifier: Notifier
  readonly #watched = new Map<Lock, Watched>()
  #timer: NodeJS.Timeout | null = null

  constructor(options: LockManagerOptions) {
    super()
    requireOptions('options', options)
    this.redis = assertUsableClient(options.redis)
    this.#keyspace = keyspace(requireNonEmptyString('prefix', options.prefix ?? 'lock'))
    this.defaultTtlMs = requireTimeoutMs('ttlMs', options.ttlMs ?? 30_000)
    this.#defaultWaitMs = requireNonNegativeInteger('waitMs', options.waitMs ?? 10_000)
    this.timeoutMs = requireTimeoutMs('timeoutMs', options.timeoutMs ?? 1_000)
    this.#fenceTtlMs = requireTimeoutMs('fenceTtlMs', options.fenceTtlMs ?? 7 * 86_400_000)
    this.handoffMs = requireTimeoutMs('handoffMs', options.handoffMs ?? 250)
    this.deadlines = new Deadlines(this.timeoutMs)
    this.#notifier = new Notifier(this.redis)
  }

  lockKey(resource: string): string {
    return this.#keyspace.key(resource)
  }

  queueKey(resource: string): string {
    return this.#keyspace.key(resource, 'waiters')
  }

  channel(resource: string): string {
    return `${this.#keyspace.key(resource)}:released`
  }

  validateTtl(ttlMs: number): number {
    return requireTimeoutMs('ttlMs', ttlMs)
  }

  /** One round trip: the Lock, or null if someone else holds it. */
  tryAcquire(
    resource: string,
    options: Omit<AcquireOptions, 'waitMs' | 'signal'> = {},
  ): Promise<Lock | null> {
    return promised(() => {
      const attempt = this.#attemptArgs(resource, options)
      return instrument(
        { package: 'lock', operation: 'tryAcquire' },
        async () => (await this.#attempt(attempt)).lock,
      )
    })
  }

  #attemptArgs(resource: string, options: AcquireOptions) {
    requireNonEmptyString('resource', resource)
    requireOptions('options', options)
    const ttlMs = this.validateTtl(options.ttlMs ?? this.defaultTtlMs)
    const owner = options.owner === undefined ? randomUUID() : requireNonEmptyString('owner', options.owner)
    if (options.reentrant !== undefined) requireBoolean('reentrant', options.reentrant)
    return { resource, ttlMs, owner, reentrant: options.reentrant === true }
  }

  async #attempt(
    a: {
      resource: string
      ttlMs: number
      owner: string
      reentrant: boolean
    },
    queueMs = 0,
  ): Promise<{ lock: Lock | null; holderTtlMs: number }> {
    const keys = [
      this.lockKey(a.resource),
      this.#keyspace.key(a.resource, 'fence'),
      this.queueKey(a.resource),
    ]
    const sentAt = performance.now()
    const [ok, token, expiresAt] = await this.deadlines.run(
      acquireScript.run(this.redis, keys, [a.owner, a.ttlMs, a.reentrant ? 1 : 0, this.#fenceTtlMs, queueMs]),
      'lock.acquire',
    )
    if (ok === 1)
      return { lock: new Lock(this, a.resource, a.owner, token, expiresAt!, sentAt, a.ttlMs), holderTtlMs: 0 }
    return { lock: null, holderTtlMs: token }
  }

  /**
   * The Lock, waiting up to `waitMs` (woken by pub/sub on release, with jittered backoff as a
   * fallback). Throws LockTimeoutError, or AbortError when `signal` aborts.
   */
  acquire(resource: string, options: AcquireOptions = {}): Promise<Lock> {
    return promised(() => {
      const a = this.#attemptArgs(resource, options)
      const waitMs = requireNonNegativeInteger('waitMs', options.waitMs ?? this.#defaultWaitMs)
      const signal = requireSignal('signal', options.signal)
      return instrument({ package: 'lock', operation: 'acquire' }, () => this.#acquire(a, waitMs, signal))
    })
  }

  #acquire(
    a: { resource: string; ttlMs: number; owner: string; reentrant: boolean },
    waitMs: number,
    signal?: AbortSignal,
  ): Promise<Lock> {
    const deadline = performance.now() + waitMs
    return acquireWithWait({
      resource: a.resource,
      waitMs,
      signal,
      channel: this.channel(a.resource),
      notifier: this.#notifier,
      // Waiters queue in Redis; a release reserves the lock for the first one and wakes it by id.
      message: a.owner,
      // So polling only covers a lost wake-up (or a holder that died: the hint covers that), and
      // can be slow: 16 queued waiters polling from 10 ms tripled Redis's load per hand-off.
      backoff: queuedBackoff,
      attempt: async () => {
        const queueMs = waitMs > 0 ? Math.max(1, Math.ceil(deadline - performance.now())) : 0
        const r = await this.#attempt(a, queueMs)
        return { value: r.lock, hintMs: r.holderTtlMs }
      },
      abandon: () =>
        this.deadlines.run(
          abandonScript.run(
            this.redis,
            [this.lockKey(a.resource), this.queueKey(a.resource)],
            [a.owner, this.channel(a.resource), this.handoffMs],
          ),
          'lock.abandon',
        ),
      busy: 'held by another owner',
    })
  }

  /**
   * Runs `fn` under the lock, with a watchdog extending it every ttl/3. A renewal that fails for a
   * connection error is retried, but the watchdog keeps its own monotonic deadline: once only a
   * third of the TTL is certainly left without a successful renewal, `signal` aborts, whatever a
   * renewal in flight is doing. So a renewal gets at most ttl/3 (less than `timeoutMs` when
   * ttlMs < 3 × timeoutMs). When the lock is lost, a `lost` event is emitted and using() rejects
   * with LockLostError once `fn` settles. The lock is released whatever happens. If `signal`
   * aborts while the lock is being acquired, `fn` never runs.
   */
  using<T>(
    resource: string,
    fn: (signal: AbortSignal, lock: Lock) => Promise<T>,
    options: AcquireOptions = {},
  ): Promise<T> {
    return promised(() => {
      requireFunction('fn', fn)
      return this.#using(resource, fn, options)
    })
  }

  async #using<T>(
    resource: string,
    fn: (signal: AbortSignal, lock: Lock) => Promise<T>,
    options: AcquireOptions,
  ): Promise<T> {
    const lock = await this.acquire(resource, options)
    const outer = options.signal
    if (outer?.aborted) {
      // Aborted while the acquire was in flight: never start fn on a signal already fired.
      await lock.release().catch(() => {})
      throw new AbortError(`using '${resource}'`, { cause: outer.reason })
    }
    const ttlMs = options.ttlMs ?? this.defaultTtlMs
    const controller = new AbortController()
    const forward = () => controller.abort(outer?.reason)
    outer?.addEventListener('abort', forward, { once: true })
    const watched: Watched = { ttlMs, nextAt: performance.now() + ttlMs / 3, controller }
    this.#watched.set(lock, watched)
    this.#schedule()
    try {
      const result = await fn(controller.signal, lock)
      if (watched.lost) throw watched.lost
      return result
    } finally {
      outer?.removeEventListener('abort', forward)
      this.unwatch(lock)
      await lock.release().catch(() => {})
    }
  }

  unwatch(lock: Lock): void {
    if (this.#watched.delete(lock) && this.#watched.size === 0 && this.#timer) {
      clearTimeout(this.#timer)
      this.#timer = null
    }
  }

  // One timer for every watched lock, armed for the earliest renewal or abort deadline due. A
  // renewal in flight has nextAt = Infinity, but its lock's abort deadline still arms the timer.
  #schedule(): void {
    if (this.#timer) clearTimeout(this.#timer)
    this.#timer = null
    if (this.#watched.size === 0) return
    let next = Number.POSITIVE_INFINITY
    for (const [lock, w] of this.#watched) next = Math.min(next, w.nextAt, abortAt(lock, w))
    this.#timer = setTimeout(this.#onTimer, Math.max(0, next - performance.now()))
    this.#timer.unref()
  }

  readonly #onTimer = guarded('lock', 'watchdog', () => this.#tick())

  #tick(): void {
    this.#timer = null
    const now = performance.now()
    for (const [lock, w] of [...this.#watched]) {
      if (abortAt(lock, w) <= now)
        this.#lose(lock, w, 'no renewal succeeded before only a third of the TTL was left')
    }
    const due = [...this.#watched].filter(([, w]) => w.nextAt <= now)
    for (const [lock, w] of due) {
      w.nextAt = Number.POSITIVE_INFINITY
      lock.extend(w.ttlMs).then(
        (ok) => {
          if (!this.#watched.has(lock)) return
          if (ok) {
            w.nextAt = performance.now() + w.ttlMs / 3
            this.#schedule()
          } else this.#lose(lock, w, 'it expired or was taken over before renewal')
        },
        (error: unknown) => {
          if (!this.#watched.has(lock)) return
          // A blip (a reconnect, a slow reply) need not cost the lock: retry while more than a
          // third of the TTL is certainly left, so that once it is reported lost, `fn` still has
          // that third to stop before anyone else can take the lock.
          const retryAt = performance.now() + Math.max(50, Math.min(1_000, w.ttlMs / 10))
          if (isConnectionError(error) && retryAt < abortAt(lock, w)) {
            w.nextAt = retryAt
            publishEvent({ package: 'lock', event: 'renewal-retry', resource: lock.resource, error })
            this.#schedule()
          } else this.#lose(lock, w, `renewal failed: ${(error as Error).message}`, error)
        },
      )
    }
    this.#schedule()
  }

  #lose(lock: Lock, w: Watched, why: string, cause?: unknown): void {
    this.#watched.delete(lock)
    const error = new LockLostError(lock.resource, lock.token, why, { cause })
    w.lost = error
    w.controller.abort(error)
    publishEvent({ package: 'lock', event: 'lost', resource: lock.resource, token: lock.token, error })
    // A user's 'lost' listener that throws must not escape from a timer or a promise callback.
    if (this.listenerCount('lost') > 0) this.#emitLost(error, lock)
    this.#schedule()
  }

  readonly #emitLost = guarded('lock', 'lost', (error: LockLostError, lock: Lock) =>
    this.emit('lost', error, lock),
  )

  /** Stops the watchdog and closes the pub/sub connection (bounded); held locks are not released. */
  async close(): Promise<void> {
    if (this.#timer) clearTimeout(this.#timer)
    this.#timer = null
    this.#watched.clear()
    await this.#notifier.close()
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.close()
  }
}
