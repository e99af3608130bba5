import { randomUUID } from 'node:crypto'
import {
  AbortError,
  assertUsableClient,
  type BatchOption,
  createHold,
  type Hold,
  HoldLostError,
  InvalidArgumentError,
  instrument,
  isConnectionError,
  type Keyspace,
  keyspace,
  type LeaseKeys,
  LeaseSet,
  Notifier,
  promised,
  type RedisClient,
  RedisGuard,
  requireBoolean,
  requireDurationMs,
  requireGivenOptions,
  requireKnownOptions,
  requireNonEmptyString,
  requireOneOf,
  requireOptions,
  requirePositiveInteger,
  requireSignal,
  requireTimeoutMs,
  Watchdog,
} from '@rp/core/kit'
import { RateLimitExceededError } from './errors.js'
import { reportFallback } from './guard.js'

export interface ConcurrencyLimiterOptions extends BatchOption {
  redis: RedisClient
  /** Key namespace; default `rl:concurrency`. */
  prefix?: string
  /** Most leases in flight per key. */
  limit: number
  /** A lease never released or extended lapses after this long (a crashed worker frees its slot). */
  ttlMs?: number
  /** @deprecated The same as `ttlMs` (the family's name for a hold's lifetime), kept from 0.1. */
  leaseMs?: number
  /** When Redis is unreachable: `'open'` hands out an untracked lease, `'closed'` (default) throws. */
  failure?: 'open' | 'closed'
  timeoutMs?: number
}

/**
 * A slot in flight: core's Hold (release once and retry after a failure, extend while held,
 * dispose), plus its key and where it came from. `expiresAt` is 0 for an untracked fail-open lease.
 */
export interface Lease extends Hold {
  readonly key: string
  readonly source: 'redis' | 'fail-open'
}

export interface ConcurrencyAcquireOptions {
  /** Wait up to this long for a slot; default 0 (fail at once). */
  waitMs?: number
  signal?: AbortSignal
}

/**
 * Counts work in flight per key across processes, e.g. at most 10 concurrent exports per tenant: a
 * thin policy over core's LeaseSet (the mechanism Semaphore uses too). Waiters queue in Redis and
 * a release wakes exactly one, by id.
 */
export class ConcurrencyLimiter {
  readonly #keyspace: Keyspace
  readonly #limit: number
  readonly #leaseMs: number
  readonly #failure: 'open' | 'closed'
  readonly #leases: LeaseSet
  readonly #notifier: Notifier
  readonly #watchdog = new Watchdog('ratelimit')

  constructor(options: ConcurrencyLimiterOptions) {
    requireGivenOptions('options', options)
    requireKnownOptions('options', options, [
      'redis',
      'prefix',
      'limit',
      'ttlMs',
      'leaseMs',
      'failure',
      'timeoutMs',
      'batch',
    ])
    const redis = assertUsableClient(options.redis)
    this.#keyspace = keyspace(requireNonEmptyString('prefix', options.prefix ?? 'rl:concurrency'))
    this.#limit = requirePositiveInteger('limit', options.limit)
    if (options.ttlMs !== undefined && options.leaseMs !== undefined && options.ttlMs !== options.leaseMs)
      throw new InvalidArgumentError('ttlMs', 'and leaseMs name the same thing; give one of them')
    this.#leaseMs = requireTimeoutMs(
      options.ttlMs === undefined && options.leaseMs !== undefined ? 'leaseMs' : 'ttlMs',
      options.ttlMs ?? options.leaseMs,
    )
    this.#failure = requireOneOf('failure', options.failure ?? 'closed', ['open', 'closed'] as const)
    const guard = new RedisGuard(redis, requireTimeoutMs('timeoutMs', options.timeoutMs ?? 1_000), {
      batch: requireBoolean('batch', options.batch ?? true),
    })
    this.#notifier = new Notifier(redis)
    this.#leases = new LeaseSet({
      package: 'ratelimit',
      redis,
      guard,
      notifier: this.#notifier,
      name: 'concurrency',
    })
  }

  #keys(key: string): LeaseKeys {
    const set = this.#keyspace.key(requireNonEmptyString('key', key), 'leases')
    return {
      set,
      queue: this.#keyspace.key(key, 'waiters'),
      channel: this.#keyspace.channel(key, 'leases', 'released'),
    }
  }

  /** A lease Redis never recorded (failure 'open'): releasing or extending it does nothing. */
  #untracked(key: string, id: string, error: unknown): Lease {
    reportFallback('concurrency.acquire', 'open', error)
    return createHold(
      {
        id,
        expiresAt: 0,
        ttlMs: this.#leaseMs,
        sentAt: performance.now(),
        package: 'ratelimit',
        name: 'concurrency',
        call: (_operation, work) => work(),
        // If Redis did record it (the reply was lost), free it best-effort; it lapses anyway.
        release: () =>
          this.#leases.forget(this.#keys(key), id).then(
            () => 'expired' as const,
            () => 'expired' as const,
          ),
        // Nothing to renew: an untracked lease stays "held" for using() until it is released.
        extend: () => Promise.resolve(Date.now() + this.#leaseMs),
      },
      { key, source: 'fail-open' as const },
    )
  }

  #failOpen(key: string, id: string, error: unknown): Lease {
    // Only Redis being unreachable fails open; a data error or OOM is Redis answering: surface it.
    if (this.#failure === 'closed' || !isConnectionError(error)) throw error
    return this.#untracked(key, id, error)
  }

  /** One round trip: a Lease, or null when `limit` leases are in flight. */
  tryAcquire(key: string, options: Record<string, never> = {}): Promise<Lease | null> {
    return promised(async () => {
      const keys = this.#keys(key)
      // A try does not wait: a waitMs or a signal here would be silently meaningless.
      requireKnownOptions('options', requireOptions('options', options), [])
      return instrument({ package: 'ratelimit', operation: 'concurrency.tryAcquire' }, async () => {
        const id = randomUUID()
        try {
          const { grant } = await this.#leases.attempt(keys, this.#limit, this.#leaseMs, id)
          return grant
            ? this.#leases.hold(keys, grant, this.#leaseMs, { key, source: 'redis' as const })
            : null
        } catch (error) {
          return this.#failOpen(key, id, error)
        }
      })
    })
  }

  /**
   * A Lease, waiting up to `waitMs` for a slot in the queue (woken by id when a lease of this key
   * is released, with jittered backoff as the fallback). Throws RateLimitExceededError when none
   * frees up in time, AbortError when `signal` aborts. With failure 'open', a Redis outage yields
   * an untracked lease.
   */
  acquire(key: string, options: ConcurrencyAcquireOptions = {}): Promise<Lease> {
    return promised(() => {
      const keys = this.#keys(key)
      const o = requireOptions('options', options)
      requireKnownOptions('options', o, ['waitMs', 'signal'])
      const waitMs = requireDurationMs('waitMs', o.waitMs ?? 0)
      const signal = requireSignal('signal', o.signal)
      const id = randomUUID()
      return instrument({ package: 'ratelimit', operation: 'concurrency.acquire' }, async () => {
        try {
          const grant = await this.#leases.wait(keys, this.#limit, this.#leaseMs, id, {
            what: `ConcurrencyLimiter.acquire '${key}'`,
            waitMs,
            signal,
            retryConnectionErrors: false,
            timeout: (_lastError, hintMs) =>
              new RateLimitExceededError(key, waitMs, `all ${this.#limit} leases are in flight`, hintMs),
          })
          return this.#leases.hold(keys, grant, this.#leaseMs, { key, source: 'redis' as const })
        } catch (error) {
          if (error instanceof RateLimitExceededError || error instanceof AbortError) throw error
          return this.#failOpen(key, id, error)
        }
      })
    })
  }

  /**
   * Runs `fn` holding a lease, renewed by core's watchdog every ttl/3 and released afterwards;
   * `fn`'s signal aborts with HoldLostError if the lease is lost.
   */
  using<T>(
    key: string,
    fn: (signal: AbortSignal, lease: Lease) => Promise<T>,
    options: ConcurrencyAcquireOptions = {},
  ): Promise<T> {
    return this.#watchdog.using(() => this.acquire(key, options), fn, {
      signal: options?.signal,
      lostError: (why, cause) => new HoldLostError(key, why, { cause, what: 'lease on' }),
    })
  }

  /** Stops renewals and closes the pub/sub connection waiters share; leases in flight are untouched. */
  async close(): Promise<void> {
    this.#watchdog.close()
    await this.#notifier.close()
  }

  /** How many leases are in flight for `key` now. */
  active(key: string): Promise<number> {
    return promised(() => this.#leases.count(this.#keys(key)))
  }
}
