import type { RedisClient } from './client.js'
import { fullJitterBackoff } from './connection.js'
import type { RedisGuard } from './guard.js'
import { createHold, type Hold, releasedIf } from './hold.js'
import type { Notifier } from './notifier.js'
import { defineScript, type ScriptRunOptions } from './script.js'
import { waitForRelease } from './wait.js'

const NOW = 'local now = rp_now_ms()'

/**
 * KEYS: [lease set (zset id -> expiry ms), waiter queue (zset id -> wait deadline)].
 * ARGV: [limit, ttlMs, id, queue deadline ms or 0]. Reply: {1, expiresAt} or {0, ms until the
 * oldest lease lapses}. Lapsed leases are reclaimed; a caller with a deadline joins the queue.
 */
const acquireScript = defineScript<[number, number]>({
  name: 'core.leases.acquire',
  keys: 2,
  lua: `${NOW}
local limit, ttl = tonumber(ARGV[1]), tonumber(ARGV[2])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', rp_int(now))
-- A retry of an acquire whose reply was lost: the lease is already this caller's.
local mine = redis.call('ZSCORE', KEYS[1], ARGV[3])
if mine then return {1, tonumber(mine)} end
if redis.call('ZCARD', KEYS[1]) >= limit then
  local deadline = tonumber(ARGV[4])
  if deadline > 0 then
    redis.call('ZADD', KEYS[2], 'NX', rp_int(now + deadline), ARGV[3])
    if redis.call('PTTL', KEYS[2]) < deadline then redis.call('PEXPIRE', KEYS[2], ARGV[4]) end
  end
  local first = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
  return {0, math.max(1, tonumber(first[2]) - now)}
end
redis.call('ZADD', KEYS[1], rp_int(now + ttl), ARGV[3])
if redis.call('PTTL', KEYS[1]) < ttl then redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
if ARGV[4] ~= '0' then redis.call('ZREM', KEYS[2], ARGV[3]) end
return {1, now + ttl}`,
})

/** KEYS: [lease set]. ARGV: [id, ttlMs]. Reply: the new expiry, or 0 if the lease lapsed. */
const extendScript = defineScript<number>({
  name: 'core.leases.extend',
  keys: 1,
  flags: ['allow-oom'],
  lua: `${NOW}
local score = redis.call('ZSCORE', KEYS[1], ARGV[1])
if not score or tonumber(score) <= now then return 0 end
local ttl = tonumber(ARGV[2])
redis.call('ZADD', KEYS[1], 'XX', rp_int(now + ttl), ARGV[1])
if redis.call('PTTL', KEYS[1]) < ttl then redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return now + ttl`,
})

/**
 * KEYS: [lease set, waiter queue]. ARGV: [id, channel]. Reply: 1 if the lease was held. A freed
 * lease wakes the longest-waiting live waiter only (the message is its id), and pops it, so a
 * waiter that died is woken once; a live one that loses the race rejoins at its retry.
 */
const releaseScript = defineScript<number>({
  name: 'core.leases.release',
  keys: 2,
  flags: ['allow-oom'],
  lua: `
local removed = redis.call('ZREM', KEYS[1], ARGV[1])
if removed == 1 and redis.call('EXISTS', KEYS[2]) == 1 then
  ${NOW}
  redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', rp_int(now))
  local next = redis.call('ZRANGE', KEYS[2], 0, 0)
  if next[1] then
    redis.call('ZREM', KEYS[2], next[1])
    redis.call('PUBLISH', ARGV[2], next[1])
  end
end
return removed`,
})

/** KEYS: [lease set]. Reply: how many leases are live now, on the server clock. */
const countScript = defineScript<number>({
  name: 'core.leases.count',
  keys: 1,
  flags: ['no-writes'],
  lua: `${NOW}
return redis.call('ZCOUNT', KEYS[1], '(' .. rp_int(now), '+inf')`,
})

/** The keys of one lease set: the set, its waiter queue (same hash tag) and its release channel. */
export interface LeaseKeys {
  readonly set: string
  readonly queue: string
  readonly channel: string
}

export interface LeaseGrant {
  id: string
  expiresAt: number
  sentAt: number
}

export interface LeaseWait {
  /** Names what is awaited in AbortError messages. */
  what: string
  waitMs: number
  signal?: AbortSignal | undefined
  /** The error when waitMs runs out; `hintMs` is how long until the oldest lease lapses. */
  timeout: (lastError: unknown, hintMs: number) => Error
  /** Retry attempts that fail for a connection error until the deadline (default true). */
  retryConnectionErrors?: boolean
}

// Waiters queue in Redis and are woken by id, so polling only covers a lost wake-up.
const queuedBackoff = fullJitterBackoff(100, 1_000)

/**
 * An expiring set of at most `limit` leases per key, on the server clock: the mechanism behind
 * Semaphore and ConcurrencyLimiter, written once. Acquire, extend and release are one script each;
 * waiters queue in Redis (earliest deadline first) and a release wakes exactly one, by id.
 */
export class LeaseSet {
  readonly #redis: RedisClient
  readonly #call: <T>(operation: string, work: () => Promise<T>) => Promise<T>
  readonly #scriptOptions: ScriptRunOptions
  readonly #notifier: Notifier
  readonly #name: string
  readonly #package: string

  constructor(options: {
    /** The owning package, for instrumentation. */
    package: string
    redis: RedisClient
    /** The owner's bounded call path, and how its scripts run (batched or not). */
    guard: RedisGuard
    notifier: Notifier
    /** Names operations in errors, e.g. `semaphore`. */
    name: string
  }) {
    this.#redis = options.redis
    const guard = options.guard
    this.#call = (operation, work) => guard.run(operation, work)
    this.#scriptOptions = guard.scriptOptions
    this.#notifier = options.notifier
    this.#name = options.name
    this.#package = options.package
  }

  /** One round trip: a grant, or the ms until the oldest lease lapses. */
  async attempt(
    keys: LeaseKeys,
    limit: number,
    ttlMs: number,
    id: string,
    queueMs = 0,
  ): Promise<{ grant: LeaseGrant | null; hintMs: number }> {
    const sentAt = performance.now()
    const [ok, value] = await this.#call(`${this.#name}.acquire`, () =>
      acquireScript.run(
        this.#redis,
        [keys.set, keys.queue],
        [limit, ttlMs, id, queueMs],
        this.#scriptOptions,
      ),
    )
    return ok === 1 ? { grant: { id, expiresAt: value, sentAt }, hintMs: 0 } : { grant: null, hintMs: value }
  }

  /** A grant, waiting up to `waitMs` in the queue (woken by id on release). */
  wait(keys: LeaseKeys, limit: number, ttlMs: number, id: string, wait: LeaseWait): Promise<LeaseGrant> {
    const deadline = performance.now() + wait.waitMs
    let hintMs = 0
    return waitForRelease({
      what: wait.what,
      waitMs: wait.waitMs,
      signal: wait.signal,
      channel: keys.channel,
      notifier: this.#notifier,
      message: id,
      backoff: queuedBackoff,
      retryConnectionErrors: wait.retryConnectionErrors ?? true,
      attempt: async () => {
        const queueMs = wait.waitMs > 0 ? Math.max(1, Math.ceil(deadline - performance.now())) : 0
        const r = await this.attempt(keys, limit, ttlMs, id, queueMs)
        hintMs = r.hintMs
        return { value: r.grant, hintMs: r.hintMs }
      },
      abandon: () => this.#call(`${this.#name}.abandon`, () => this.#redis.zrem(keys.queue, id)),
      timeout: (lastError) => wait.timeout(lastError, hintMs),
    })
  }

  /** The handle for a grant: core's Hold, with the kind's own fields. */
  hold<Extra extends object>(
    keys: LeaseKeys,
    grant: LeaseGrant,
    ttlMs: number,
    extra: Extra,
  ): Hold & Readonly<Extra> {
    return createHold(
      {
        id: grant.id,
        expiresAt: grant.expiresAt,
        ttlMs,
        sentAt: grant.sentAt,
        package: this.#package,
        name: this.#name,
        call: this.#call,
        release: () =>
          releaseScript
            .run(this.#redis, [keys.set, keys.queue], [grant.id, keys.channel], this.#scriptOptions)
            .then(releasedIf),
        extend: (ms) => extendScript.run(this.#redis, [keys.set], [grant.id, ms], this.#scriptOptions),
      },
      extra,
    )
  }

  /** Removes a lease id and its queue place without a release wake-up (a lease Redis may not have recorded). */
  forget(keys: LeaseKeys, id: string): Promise<unknown> {
    return this.#call(`${this.#name}.forget`, () =>
      Promise.all([this.#redis.zrem(keys.set, id), this.#redis.zrem(keys.queue, id)]),
    )
  }

  /** How many leases are live now. */
  count(keys: LeaseKeys): Promise<number> {
    return this.#call(`${this.#name}.count`, () =>
      countScript.run(this.#redis, [keys.set], [], this.#scriptOptions),
    )
  }
}
