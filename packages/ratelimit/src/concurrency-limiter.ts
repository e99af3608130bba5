import { randomUUID } from 'node:crypto'
import {
  assertUsableClient,
  createHold,
  defineScript,
  type Hold,
  InvalidArgumentError,
  instrument,
  type Keyspace,
  keyspace,
  Notifier,
  promised,
  publishEvent,
  type RedisClient,
  RedisGuard,
  requireNonEmptyString,
  requireNonNegativeInteger,
  requireOneOf,
  requireOptions,
  requirePositiveInteger,
  requireSignal,
  requireTimeoutMs,
  waitForRelease,
} from '@rp/core'
import { RateLimitExceededError } from './errors.js'

const NOW_MS = `local t = redis.call('TIME'); local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)`

// KEYS[1]: zset of lease id -> expiry ms. ARGV: limit, leaseMs, lease id.
// Reply: {1, in-flight, expiresAt} when acquired, {0, in-flight, retryAfterMs} when full.
const acquireScript = defineScript<[number, number, number]>({
  name: 'ratelimit.concurrency.acquire',
  keys: 1,
  lua: `${NOW_MS}
local limit, lease = tonumber(ARGV[1]), tonumber(ARGV[2])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
local n = redis.call('ZCARD', KEYS[1])
if n >= limit then
  local first = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
  return {0, n, math.max(1, tonumber(first[2]) - now)}
end
redis.call('ZADD', KEYS[1], now + lease, ARGV[3])
if redis.call('PTTL', KEYS[1]) < lease then redis.call('PEXPIRE', KEYS[1], lease) end
return {1, n + 1, now + lease}`,
})

// KEYS[1]: the zset. ARGV: lease id, leaseMs. Reply: new expiresAt, or 0 if the lease is gone.
const extendScript = defineScript<number>({
  name: 'ratelimit.concurrency.extend',
  keys: 1,
  flags: ['allow-oom'],
  lua: `${NOW_MS}
local lease = tonumber(ARGV[2])
local score = redis.call('ZSCORE', KEYS[1], ARGV[1])
if not score or tonumber(score) <= now then return 0 end
redis.call('ZADD', KEYS[1], 'XX', now + lease, ARGV[1])
if redis.call('PTTL', KEYS[1]) < lease then redis.call('PEXPIRE', KEYS[1], lease) end
return now + lease`,
})

// KEYS[1]: the zset. ARGV: lease id, channel. Reply: 1 if the lease was held. A freed slot wakes
// this key's waiters by pub/sub.
const releaseScript = defineScript<number>({
  name: 'ratelimit.concurrency.release',
  keys: 1,
  flags: ['allow-oom'],
  lua: `
local removed = redis.call('ZREM', KEYS[1], ARGV[1])
if removed == 1 then redis.call('PUBLISH', ARGV[2], '1') end
return removed`,
})

export interface ConcurrencyLimiterOptions {
  redis: RedisClient
  /** Key namespace; default `rl:concurrency`. */
  prefix?: string
  /** Most leases in flight per key. */
  limit: number
  /** A lease never released expires after this long (a crashed worker frees its slot). */
  leaseMs: number
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

/** Counts work in flight per key across processes, e.g. at most 10 concurrent exports per tenant. */
export class ConcurrencyLimiter {
  readonly #redis: RedisClient
  readonly #keyspace: Keyspace
  readonly #limit: number
  readonly #leaseMs: number
  readonly #failure: 'open' | 'closed'
  readonly #guard: RedisGuard
  readonly #notifier: Notifier

  constructor(options: ConcurrencyLimiterOptions) {
    if (!options || typeof options !== 'object')
      throw new InvalidArgumentError('options', 'must be an object')
    this.#redis = assertUsableClient(options.redis)
    this.#keyspace = keyspace(requireNonEmptyString('prefix', options.prefix ?? 'rl:concurrency'))
    this.#limit = requirePositiveInteger('limit', options.limit)
    this.#leaseMs = requireTimeoutMs('leaseMs', options.leaseMs)
    this.#failure = requireOneOf('failure', options.failure ?? 'closed', ['open', 'closed'] as const)
    this.#guard = new RedisGuard(this.#redis, requireTimeoutMs('timeoutMs', options.timeoutMs ?? 1_000))
    this.#notifier = new Notifier(this.#redis)
  }

  #key(key: string): string {
    return this.#keyspace.key(requireNonEmptyString('key', key), 'leases')
  }

  #lease(key: string, id: string, expiresAt: number, source: Lease['source']): Lease {
    const zset = this.#key(key)
    const tracked = source === 'redis'
    return createHold(
      {
        id,
        expiresAt,
        defaultTtlMs: this.#leaseMs,
        name: 'ratelimit.concurrency',
        call: (operation, work) => this.#guard.run(operation, work),
        // A fail-open lease was never recorded: there is nothing to free or extend.
        release: () =>
          tracked ? releaseScript.run(this.#redis, [zset], [id, `${zset}:released`]) : Promise.resolve(0),
        extend: (ms) => (tracked ? extendScript.run(this.#redis, [zset], [id, ms]) : Promise.resolve(0)),
      },
      { key, source },
    )
  }

  /** One round trip: a Lease, or null when `limit` leases are in flight. */
  tryAcquire(key: string): Promise<Lease | null> {
    return promised(async () => {
      requireNonEmptyString('key', key)
      return instrument(
        { package: 'ratelimit', operation: 'concurrency.tryAcquire' },
        async () => (await this.#attempt(key)).lease,
      )
    })
  }

  async #attempt(key: string): Promise<{ lease: Lease | null; retryAfterMs: number }> {
    const zset = this.#key(key)
    const id = randomUUID()
    try {
      const [ok, , value] = await this.#guard.run('ratelimit.concurrency.acquire', () =>
        acquireScript.run(this.#redis, [zset], [this.#limit, this.#leaseMs, id]),
      )
      return ok === 1
        ? { lease: this.#lease(key, id, value, 'redis'), retryAfterMs: 0 }
        : { lease: null, retryAfterMs: value }
    } catch (error) {
      if (error instanceof InvalidArgumentError || this.#failure === 'closed') throw error
      publishEvent({
        package: 'ratelimit',
        event: 'failure-policy',
        operation: 'concurrency.acquire',
        policy: 'open',
        error,
      })
      return { lease: this.#lease(key, id, 0, 'fail-open'), retryAfterMs: 0 }
    }
  }

  /**
   * A Lease, waiting up to `waitMs` for a slot: woken by pub/sub when a lease of this key is
   * released, with jittered backoff (bounded by when the oldest lease lapses) as the fallback.
   * Throws RateLimitExceededError when none frees up in time, AbortError when `signal` aborts.
   */
  acquire(key: string, options: ConcurrencyAcquireOptions = {}): Promise<Lease> {
    return promised(() => {
      requireNonEmptyString('key', key)
      const o = requireOptions('options', options)
      return this.#acquire(
        key,
        requireNonNegativeInteger('waitMs', o.waitMs ?? 0),
        requireSignal('signal', o.signal),
      )
    })
  }

  #acquire(key: string, waitMs: number, signal: AbortSignal | undefined): Promise<Lease> {
    const channel = `${this.#key(key)}:released`
    return instrument({ package: 'ratelimit', operation: 'concurrency.acquire' }, () => {
      let retryAfterMs = 0
      return waitForRelease({
        what: `ConcurrencyLimiter.acquire '${key}'`,
        waitMs,
        signal,
        channel,
        notifier: this.#notifier,
        attempt: async () => {
          const r = await this.#attempt(key)
          retryAfterMs = r.retryAfterMs
          return { value: r.lease, hintMs: r.retryAfterMs }
        },
        timeout: () =>
          new RateLimitExceededError(
            `${this.#limit} leases for '${key}' are in flight; none was free within ${waitMs} ms`,
            retryAfterMs,
          ),
      })
    })
  }

  /** Closes the pub/sub connection waiters share; leases in flight are untouched. */
  close(): Promise<void> {
    return this.#notifier.close()
  }

  /** How many leases are in flight for `key` now. */
  active(key: string): Promise<number> {
    return promised(() => this.#active(this.#key(key)))
  }

  #active(zset: string): Promise<number> {
    return this.#guard.run('ratelimit.concurrency.active', async () => {
      const t = await this.#redis.time()
      return this.#redis.zcount(zset, `(${Number(t[0]) * 1000 + Math.floor(Number(t[1]) / 1000)}`, '+inf')
    })
  }
}
