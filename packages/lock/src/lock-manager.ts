import { randomUUID } from 'node:crypto'
import { EventEmitter } from 'node:events'
import {
  assertUsableClient,
  type BatchOption,
  fullJitterBackoff,
  instrument,
  Notifier,
  promised,
  type RedisClient,
  RedisGuard,
  requireBoolean,
  requireDurationMs,
  requireFunction,
  requireKnownOptions,
  requireNonEmptyString,
  requireOptions,
  requireSignal,
  requireTimeoutMs,
  requireWellFormedString,
  Watchdog,
  waitForRelease,
} from '@rp/core/kit'
import { LockLostError, lockTimeout } from './errors.js'
import { Lock, type LockContext } from './lock.js'
import { LockKeys } from './lock-keys.js'
import { abandonScript, acquireScript, extendScript, releaseScript } from './scripts.js'

const queuedBackoff = fullJitterBackoff(100, 1_000)

export interface LockManagerOptions extends BatchOption {
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
  /** Called (guarded) when a lock held by using() is lost; the same as listening for `lost`. */
  onLost?: (error: LockLostError, lock: Lock) => void
}

export interface LockAcquireOptions {
  ttlMs?: number
  /** How long to wait for the lock; 0 tries once. */
  waitMs?: number
  signal?: AbortSignal
  /** Reentrancy (opt-in): the same `owner` may acquire again; each acquire needs its own release. */
  reentrant?: boolean
  /** The owner id; default a random UUID per acquire. */
  owner?: string
}

export interface LockManagerEvents {
  lost: [error: LockLostError, lock: Lock]
}

interface Attempt {
  /** One id per acquire() call: its retries are recognised, so a lost reply never strands the lock. */
  call: string
  resource: string
  /** The resource's lock key, built once: the fence, queue and channel extend it. */
  lock: string
  ttlMs: number
  owner: string
  reentrant: boolean
  /** An attempt of this call was sent with a queue deadline: it may be queued, even if its reply was lost. */
  queued?: boolean
}

/**
 * Distributed locks with fencing tokens. Acquire, extend and release are one Lua script each;
 * waiters are woken by pub/sub when a holder releases.
 */
export class LockManager extends EventEmitter<LockManagerEvents> {
  readonly #redis: RedisClient
  readonly #keys: LockKeys
  readonly #defaultTtlMs: number
  readonly #defaultWaitMs: number
  readonly #fenceTtlMs: number
  readonly #handoffMs: number
  readonly #onLost: LockManagerOptions['onLost']
  readonly #guard: RedisGuard
  readonly #notifier: Notifier
  readonly #watchdog = new Watchdog('lock')
  readonly #context: LockContext

  constructor(options: LockManagerOptions) {
    super()
    requireOptions('options', options)
    requireKnownOptions('options', options, [
      'redis',
      'prefix',
      'ttlMs',
      'waitMs',
      'timeoutMs',
      'fenceTtlMs',
      'handoffMs',
      'onLost',
      'batch',
    ])
    this.#redis = assertUsableClient(options.redis)
    this.#keys = new LockKeys(requireNonEmptyString('prefix', options.prefix ?? 'lock'))
    this.#defaultTtlMs = requireTimeoutMs('ttlMs', options.ttlMs ?? 30_000)
    this.#defaultWaitMs = requireDurationMs('waitMs', options.waitMs ?? 10_000)
    this.#guard = new RedisGuard(this.#redis, requireTimeoutMs('timeoutMs', options.timeoutMs ?? 1_000), {
      batch: requireBoolean('batch', options.batch ?? true),
    })
    const scriptOptions = this.#guard.scriptOptions
    this.#fenceTtlMs = requireTimeoutMs('fenceTtlMs', options.fenceTtlMs ?? 7 * 86_400_000)
    this.#handoffMs = requireTimeoutMs('handoffMs', options.handoffMs ?? 250)
    this.#onLost = options.onLost === undefined ? undefined : requireFunction('onLost', options.onLost)
    this.#notifier = new Notifier(this.#redis)
    const keys = this.#keys
    this.#context = {
      call: (operation, work) => this.#guard.run(operation, work),
      release: (resource, owner) => {
        const lock = keys.lock(resource)
        return releaseScript.run(
          this.#redis,
          [lock, keys.queue(resource, lock)],
          [owner, keys.channel(resource, lock), this.#handoffMs],
          scriptOptions,
        )
      },
      extend: (resource, owner, ttlMs) =>
        extendScript.run(this.#redis, [keys.lock(resource)], [owner, ttlMs], scriptOptions),
      isHeld: async (resource, owner) => (await this.#redis.hget(keys.lock(resource), 'o')) === owner,
    }
  }

  /** One round trip: the Lock, or null if someone else holds it. */
  tryAcquire(
    resource: string,
    options: Omit<LockAcquireOptions, 'waitMs' | 'signal'> = {},
  ): Promise<Lock | null> {
    return promised(() => {
      // No wait in a try: a waitMs or signal here would be silently meaningless.
      requireKnownOptions('options', requireOptions('options', options), ['ttlMs', 'reentrant', 'owner'])
      const attempt = this.#attemptArgs(resource, options)
      return instrument(
        { package: 'lock', operation: 'tryAcquire' },
        async () => (await this.#attempt(attempt)).lock,
      )
    })
  }

  #attemptArgs(resource: string, options: LockAcquireOptions): Attempt {
    requireNonEmptyString('resource', resource)
    requireOptions('options', options)
    requireKnownOptions('options', options, ['ttlMs', 'waitMs', 'signal', 'reentrant', 'owner'])
    const ttlMs = requireTimeoutMs('ttlMs', options.ttlMs ?? this.#defaultTtlMs)
    const owner = options.owner === undefined ? undefined : requireWellFormedString('owner', options.owner)
    if (options.reentrant !== undefined) requireBoolean('reentrant', options.reentrant)
    // A fresh owner is unique to this call already, so it doubles as the call's id: one UUID, not two.
    const call = randomUUID()
    return {
      call,
      resource,
      lock: this.#keys.lock(resource),
      ttlMs,
      owner: owner ?? call,
      reentrant: options.reentrant === true,
    }
  }

  async #attempt(a: Attempt, queueMs = 0): Promise<{ lock: Lock | null; holderTtlMs: number }> {
    const keys = [a.lock, this.#keys.fence(a.resource, a.lock), this.#keys.queue(a.resource, a.lock)]
    const sentAt = performance.now()
    const mayBeQueued = a.queued === true
    if (queueMs > 0) a.queued = true
    const [ok, token, expiresAt] = await this.#guard.script('lock.acquire', acquireScript, keys, [
      a.owner,
      a.ttlMs,
      a.reentrant ? 1 : 0,
      this.#fenceTtlMs,
      queueMs,
      a.call,
      mayBeQueued ? 1 : 0,
    ])
    if (ok !== 1) return { lock: null, holderTtlMs: token }
    const lock = new Lock(this.#context, {
      resource: a.resource,
      owner: a.owner,
      token,
      expiresAt: expiresAt!,
      sentAt,
      ttlMs: a.ttlMs,
    })
    return { lock, holderTtlMs: 0 }
  }

  /**
   * The Lock, waiting up to `waitMs` (woken by pub/sub on release, with jittered backoff as a
   * fallback). Throws LockTimeoutError, or AbortError when `signal` aborts.
   */
  acquire(resource: string, options: LockAcquireOptions = {}): Promise<Lock> {
    return promised(() => {
      const a = this.#attemptArgs(resource, options)
      const waitMs = requireDurationMs('waitMs', options.waitMs ?? this.#defaultWaitMs)
      const signal = requireSignal('signal', options.signal)
      return instrument({ package: 'lock', operation: 'acquire' }, () => this.#acquire(a, waitMs, signal))
    })
  }

  #acquire(a: Attempt, waitMs: number, signal?: AbortSignal): Promise<Lock> {
    const deadline = performance.now() + waitMs
    const keys = this.#keys
    return waitForRelease({
      what: `acquire '${a.resource}'`,
      retryConnectionErrors: true,
      waitMs,
      signal,
      channel: keys.channel(a.resource, a.lock),
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
        this.#guard.run('lock.abandon', () =>
          abandonScript.run(
            this.#redis,
            [a.lock, keys.queue(a.resource, a.lock)],
            [a.owner, keys.channel(a.resource, a.lock), this.#handoffMs],
          ),
        ),
      timeout: lockTimeout(a.resource, waitMs, 'held by another owner'),
    })
  }

  /**
   * Runs `fn` under the lock, with core's watchdog extending it every ttl/3. A renewal that fails
   * for a connection error is retried, but the watchdog keeps its own monotonic deadline: once only
   * a third of the TTL is certainly left without a successful renewal, `signal` aborts, whatever a
   * renewal in flight is doing. So a renewal gets at most ttl/3 (less than `timeoutMs` when
   * ttlMs < 3 × timeoutMs). When the lock is lost, `onLost` runs, a `lost` event is emitted and
   * using() rejects with LockLostError once `fn` settles. The lock is released whatever happens.
   * If `signal` aborts while the lock is being acquired, `fn` never runs.
   */
  using<T>(
    resource: string,
    fn: (signal: AbortSignal, lock: Lock) => Promise<T>,
    options: LockAcquireOptions = {},
  ): Promise<T> {
    let lock: Lock | undefined
    // Inside promised: reading options (a getter, a Proxy) may throw, and must reject instead.
    return promised(() =>
      this.#watchdog.using(
        async () => {
          lock = await this.acquire(resource, options)
          return lock
        },
        fn,
        {
          signal: options?.signal,
          lostError: (why, cause) => new LockLostError(resource, lock?.token ?? 0, why, { cause }),
          onLost: (error) => {
            this.#onLost?.(error as LockLostError, lock!)
            if (this.listenerCount('lost') > 0) this.emit('lost', error as LockLostError, lock!)
          },
        },
      ),
    )
  }

  /** Stops the watchdog and closes the pub/sub connection (bounded); held locks are not released. */
  async close(): Promise<void> {
    this.#watchdog.close()
    await this.#notifier.close()
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.close()
  }
}
