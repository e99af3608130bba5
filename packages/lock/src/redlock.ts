import { randomUUID } from 'node:crypto'
import {
  AbortError,
  assertUsableClient,
  type BatchOption,
  createHold,
  delay,
  fullJitterBackoff,
  type Hold,
  InvalidArgumentError,
  instrument,
  type Keyspace,
  keyspace,
  promised,
  type RedisClient,
  RedisUnavailableError,
  requireBoolean,
  requireDurationMs,
  requireKnownOptions,
  requireNonEmptyString,
  requireOptions,
  requireSignal,
  requireTimeoutMs,
  type ScriptRunOptions,
  Watchdog,
  withTimeout,
} from '@rp/core/kit'
import { LockLostError, RedlockQuorumError } from './errors.js'
import { redlockExtendScript, redlockReleaseScript } from './scripts.js'

export interface RedlockOptions extends BatchOption {
  /** Clock drift allowance as a fraction of the TTL; default 0.01. */
  driftFactor?: number
  prefix?: string
  /**
   * Per-instance time budget for one command; default 500 ms, enough for instances in other
   * regions (what Redlock's independent instances usually are). Lower it for instances nearby.
   */
  instanceTimeoutMs?: number
  /** Allow fewer than 3 instances (no fault tolerance then). */
  force?: boolean
}

/**
 * A Redlock lock: core's Hold (`id` is the value stored on every instance; `validUntil` the
 * performance.now() time after which it must be considered lost; `expiresAt` on this process's
 * clock, since the instances' clocks are independent). `release()` is 'released' or 'expired' once
 * a quorum answered, and rejects (retryable) otherwise.
 */
export type RedlockLock = Hold &
  Readonly<{
    resource: string
    /** How long the lock was safe to rely on at acquisition: TTL − elapsed − drift. */
    validityMs: number
  }>

const backoff = fullJitterBackoff(20, 400)

/**
 * Redlock over independent Redis instances (not replicas of one another): the lock holds when a
 * majority (N/2+1) accepted it within the TTL less elapsed time and drift.
 */
export class Redlock {
  readonly #clients: RedisClient[]
  readonly #quorum: number
  readonly #drift: number
  readonly #instanceTimeoutMs: number
  readonly #scriptOptions: ScriptRunOptions
  readonly #prefix: string
  readonly #keyspace: Keyspace
  readonly #watchdog = new Watchdog('lock')

  /**
   * `new Redlock({ clients, ...options })`, the family's constructor shape, or the older
   * `new Redlock(clients, options)`.
   */
  constructor(clients: readonly RedisClient[], options?: RedlockOptions)
  constructor(options: RedlockOptions & { clients: readonly RedisClient[] })
  constructor(
    first: readonly RedisClient[] | (RedlockOptions & { clients: readonly RedisClient[] }),
    second: RedlockOptions = {},
  ) {
    const shaped = first !== null && typeof first === 'object' && !Array.isArray(first)
    const clients = shaped
      ? (first as { clients: readonly RedisClient[] }).clients
      : (first as readonly RedisClient[])
    const options: RedlockOptions = shaped ? (first as RedlockOptions) : second
    requireOptions('options', options)
    requireKnownOptions(
      'options',
      options,
      shaped
        ? ['clients', 'driftFactor', 'prefix', 'instanceTimeoutMs', 'force', 'batch']
        : ['driftFactor', 'prefix', 'instanceTimeoutMs', 'force', 'batch'],
    )
    if (options.force !== undefined) requireBoolean('force', options.force)
    if (!Array.isArray(clients) || clients.length === 0)
      throw new InvalidArgumentError('clients', 'must be a non-empty array of ioredis clients')
    if (clients.length < 3 && !options.force) {
      throw new InvalidArgumentError(
        'clients',
        `Redlock needs at least 3 independent instances to tolerate a failure, got ${clients.length}; pass { force: true } to accept that`,
      )
    }
    this.#clients = clients.map((c) => assertUsableClient(c))
    // One client listed twice would count one instance twice towards the quorum.
    if (new Set(this.#clients).size !== this.#clients.length)
      throw new InvalidArgumentError('clients', 'must list each instance once (a client appears twice)')
    this.#quorum = Math.floor(clients.length / 2) + 1
    const drift = options.driftFactor ?? 0.01
    if (typeof drift !== 'number' || !(drift >= 0 && drift < 1))
      throw new InvalidArgumentError('driftFactor', 'must be a number in [0, 1)')
    this.#drift = drift
    this.#instanceTimeoutMs = requireTimeoutMs('instanceTimeoutMs', options.instanceTimeoutMs ?? 500)
    this.#prefix = requireNonEmptyString('prefix', options.prefix ?? 'redlock')
    this.#keyspace = keyspace(this.#prefix)
    this.#scriptOptions = Object.freeze({ batch: requireBoolean('batch', options.batch ?? true) })
  }

  get quorum(): number {
    return this.#quorum
  }

  #key(resource: string): string {
    return this.#keyspace.key(resource)
  }

  async #onAll(fn: (c: RedisClient) => Promise<unknown>): Promise<number> {
    return (await this.#settle(fn)).ok
  }

  /** Runs `fn` on every instance: how many answered at all, and how many answered OK or 1. */
  async #settle(fn: (c: RedisClient) => Promise<unknown>): Promise<{ answered: number; ok: number }> {
    const settled = await Promise.allSettled(
      this.#clients.map((c) => withTimeout(fn(c), this.#instanceTimeoutMs, 'redlock')),
    )
    return {
      answered: settled.filter((s) => s.status === 'fulfilled').length,
      ok: settled.filter((s) => s.status === 'fulfilled' && (s.value === 'OK' || s.value === 1)).length,
    }
  }

  /** Acquires on a majority within `waitMs`, or throws RedlockQuorumError (partial holds are released). */
  acquire(
    resource: string,
    options: { ttlMs: number; waitMs?: number; signal?: AbortSignal },
  ): Promise<RedlockLock> {
    return promised(() => {
      requireNonEmptyString('resource', resource)
      requireOptions('options', options)
      requireKnownOptions('options', options, ['ttlMs', 'waitMs', 'signal'])
      const ttlMs = requireTimeoutMs('ttlMs', options?.ttlMs)
      // As every hold of the family (conventions §1): a caller that waits, waits 10 s by default.
      const waitMs = requireDurationMs('waitMs', options.waitMs ?? 10_000)
      const signal = requireSignal('signal', options.signal)
      return this.#acquire(resource, this.#key(resource), ttlMs, waitMs, signal)
    })
  }

  #acquire(
    resource: string,
    key: string,
    ttlMs: number,
    waitMs: number,
    signal: AbortSignal | undefined,
  ): Promise<RedlockLock> {
    const options = { signal }
    return instrument({ package: 'lock', operation: 'redlock.acquire' }, async () => {
      const deadline = performance.now() + waitMs
      let best = 0
      for (let attempt = 0; ; attempt++) {
        if (options.signal?.aborted)
          throw new AbortError(`redlock acquire '${resource}'`, { cause: options.signal.reason })
        const value = randomUUID()
        const started = performance.now()
        const acquired = await this.#onAll((c) => c.set(key, value, 'PX', ttlMs, 'NX'))
        const elapsed = performance.now() - started
        const validityMs = Math.floor(ttlMs - elapsed - (ttlMs * this.#drift + 2))
        if (acquired >= this.#quorum && validityMs > 0)
          return this.#lock(resource, key, value, validityMs, started, ttlMs)
        best = Math.max(best, acquired)
        await this.#onAll((c) => redlockReleaseScript.run(c, [key], [value], this.#scriptOptions))
        const remaining = deadline - performance.now()
        if (remaining <= 0) throw new RedlockQuorumError(resource, waitMs, best, this.#quorum)
        await delay(
          Math.min(remaining, Math.max(1, backoff(attempt))),
          signal,
          `redlock acquire '${resource}'`,
        )
      }
    })
  }

  #lock(
    resource: string,
    key: string,
    value: string,
    validityMs: number,
    started: number,
    ttlMs: number,
  ): RedlockLock {
    return createHold(
      {
        id: value,
        expiresAt: Date.now() + validityMs,
        ttlMs,
        // validUntil = sentAt + ttlMs must be started + ttl − drift: the acquire's elapsed time is
        // already counted from `started`, so only the drift allowance comes off here.
        sentAt: started - (ttlMs * this.#drift + 2),
        package: 'lock',
        name: 'redlock',
        call: (_operation, work) => work(),
        release: async () => {
          const r = await this.#settle((c) =>
            redlockReleaseScript.run(c, [key], [value], this.#scriptOptions),
          )
          // Without a quorum of answers nothing is known: reject, so calling again retries.
          if (r.answered < this.#quorum)
            throw new RedisUnavailableError(
              `redlock release '${resource}': ${r.answered} of ${this.#clients.length} instances answered`,
            )
          return r.ok > 0 ? 'released' : 'expired'
        },
        extend: async (ms) => {
          const t = performance.now()
          const r = await this.#settle((c) =>
            redlockExtendScript.run(c, [key], [value, ms], this.#scriptOptions),
          )
          // Too few answers says nothing about the lock: reject (retryable), never "lost".
          if (r.answered < this.#quorum)
            throw new RedisUnavailableError(
              `redlock extend '${resource}': ${r.answered} of ${this.#clients.length} instances answered`,
            )
          const validity = Math.floor(ms - (performance.now() - t) - (ms * this.#drift + 2))
          return r.ok >= this.#quorum && validity > 0 ? Date.now() + validity : 0
        },
      },
      { resource, validityMs },
    )
  }

  /**
   * Runs `fn` under a Redlock lock, renewed by core's watchdog every ttl/3 and released afterwards;
   * `fn`'s signal aborts with LockLostError if the lock is lost.
   */
  using<T>(
    resource: string,
    fn: (signal: AbortSignal, lock: RedlockLock) => Promise<T>,
    options: { ttlMs: number; waitMs?: number; signal?: AbortSignal },
  ): Promise<T> {
    return this.#watchdog.using(() => this.acquire(resource, options), fn, {
      signal: options?.signal,
      lostError: (why, cause) => new LockLostError(resource, 0, why, { cause }),
    })
  }
}
