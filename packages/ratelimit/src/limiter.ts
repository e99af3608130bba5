import {
  BoundedMap,
  instrument,
  type Keyspace,
  keyspace,
  promised,
  RedisGuard,
  requireKnownOptions,
  requireOptions,
  requirePositiveInteger,
  requireTimeoutMs,
} from '@rp/core/kit'
import { type Algorithm, algorithmIndex, type RawDecision, singleScripts } from './algorithms/index.js'
import { MODE } from './algorithms/prelude.js'
import { isPolicyError, nextNonce, reportFallback } from './guard.js'
import { MemoryFallback } from './memory-fallback.js'
import {
  type LimiterSettings,
  type RateLimiterOptions,
  type ResolvedLimiterOptions,
  requireCost,
  requireKey,
  resolveLimiterOptions,
} from './options.js'
import { type RateLimitResult, toResult } from './result.js'

const OPERATIONS = {
  limit: 'ratelimit.limit',
  peek: 'ratelimit.peek',
  block: 'ratelimit.block',
  reward: 'ratelimit.reward',
} as const

const outcomeOf = (r: RateLimitResult) => (r.allowed ? 'allowed' : 'denied')

export interface LimitCallOptions {
  /** Units this request consumes; a positive integer, default 1. */
  cost?: number
}

/** Everything a MultiLimiter needs to run this limiter's policy inside its own script. */
export interface PolicySpec {
  readonly algorithmIndex: number
  readonly options: ResolvedLimiterOptions
  /** Names the policy's state: limiters with different policies never share a key. */
  readonly id: string
  key(key: string): string
}

const specs = new WeakMap<RateLimiter, PolicySpec>()

/** @internal The policy of a limiter, for MultiLimiter; not part of the public API. */
export function policySpec(limiter: RateLimiter): PolicySpec | undefined {
  return specs.get(limiter)
}

/**
 * A rate limit on one Redis. Every check is one Lua script on the server clock: the state key and
 * the block key share the caller's key as hash tag, so it is one slot on a cluster.
 */
export class RateLimiter {
  /** The policy's settings (the client excepted). */
  readonly options: Readonly<LimiterSettings>
  readonly #options: Readonly<ResolvedLimiterOptions>
  readonly #keyspace: Keyspace
  readonly #policyParts: Array<string | number>
  readonly #guard: RedisGuard
  readonly #fallback: MemoryFallback | null
  readonly #blocked: BoundedMap<string, number> | null
  // Built once: limit() is the hot path, and these never change.
  readonly #trace: { package: string; operation: string; attributes: { algorithm: Algorithm } }
  readonly #needsNonce: boolean

  constructor(options: RateLimiterOptions) {
    this.#options = Object.freeze(resolveLimiterOptions(options))
    const o = this.#options
    const { redis: _, ...settings } = o
    this.options = Object.freeze(settings)
    this.#keyspace = keyspace(o.prefix)
    // The whole policy is part of the key: a per-second and a per-hour limiter with one prefix, or
    // a deploy that changes `limit`, never read each other's counts (a changed policy starts fresh;
    // the old state expires on its own within one window).
    this.#policyParts = [
      o.algorithm,
      o.limit,
      o.windowMs,
      ...(o.algorithm === 'gcra' || o.algorithm === 'token-bucket' ? [o.burst] : []),
    ]
    this.#guard = new RedisGuard(o.redis, o.timeoutMs, { batch: o.batch })
    this.#fallback =
      typeof o.failure === 'object'
        ? new MemoryFallback(o.limit, o.windowMs, o.capacity, o.failure.maxKeys ?? 10_000)
        : null
    this.#blocked = o.blockCacheMaxKeys > 0 ? new BoundedMap<string, number>(o.blockCacheMaxKeys) : null
    this.#trace = { package: 'ratelimit', operation: 'limit', attributes: { algorithm: o.algorithm } }
    // Only the sliding log stores a member per request; the other algorithms ignore the nonce.
    this.#needsNonce = o.algorithm === 'sliding-log'
    specs.set(this, {
      algorithmIndex: algorithmIndex(o.algorithm),
      options: o,
      id: `${o.prefix}|${this.#policyParts.join('|')}`,
      key: (key) => this.#key(key),
    })
  }

  get algorithm(): Algorithm {
    return this.#options.algorithm
  }

  /** One key per caller key and policy: state and any block live together, hash-tagged by the caller's key. */
  #key(key: string): string {
    return this.#keyspace.key(key, ...this.#policyParts)
  }

  #run(operation: keyof typeof OPERATIONS, key: string, mode: number, cost: number): Promise<RawDecision> {
    const o = this.#options
    return this.#guard.script(
      OPERATIONS[operation],
      singleScripts[o.algorithm],
      [this.#key(key)],
      [mode, cost, o.limit, o.windowMs, o.burst, this.#needsNonce ? nextNonce() : ''],
    )
  }

  #result(d: RawDecision): RateLimitResult {
    return toResult(d, this.#options)
  }

  /** Applies the failure policy: Redis did not answer within timeoutMs, or is down. */
  #decideWithoutRedis(key: string, cost: number, error: unknown): RateLimitResult {
    const o = this.#options
    const now = Date.now()
    const policyName = typeof o.failure === 'object' ? 'memory' : o.failure
    reportFallback('limit', policyName, error)
    if (this.#fallback) {
      const d = this.#fallback.limit(key, cost)
      return {
        ...d,
        limit: o.limit,
        policy: o.policy,
        source: 'memory',
        ...(d.allowed ? {} : { reason: 'limit' as const }),
      }
    }
    if (o.failure === 'open') {
      return {
        allowed: true,
        limit: o.limit,
        remaining: Math.max(0, o.limit - cost),
        resetAt: now + o.windowMs,
        retryAfterMs: 0,
        policy: o.policy,
        source: 'fail-open',
      }
    }
    const retryAfterMs = Math.min(o.windowMs, 1_000)
    return {
      allowed: false,
      limit: o.limit,
      remaining: 0,
      resetAt: now + retryAfterMs,
      retryAfterMs,
      policy: o.policy,
      source: 'fail-closed',
      reason: 'redis-unavailable',
    }
  }

  /**
   * Checks and, if admitted, consumes `cost` units for `key`, in one round trip. Never throws for
   * Redis trouble: the failure policy decides and `source` says so. Denied requests consume nothing.
   */
  limit(key: string, options: LimitCallOptions = {}): Promise<RateLimitResult> {
    try {
      requireKey(key)
      const o = requireOptions('options', options)
      requireKnownOptions('options', o, ['cost'])
      const cost = requireCost(o.cost ?? 1)
      return instrument(this.#trace, () => this.#limit(key, cost), outcomeOf)
    } catch (error) {
      return Promise.reject(error)
    }
  }

  async #limit(key: string, cost: number): Promise<RateLimitResult> {
    const cachedUntil = this.#blocked?.get(key)
    if (cachedUntil !== undefined) {
      const wait = cachedUntil - Date.now()
      if (wait > 0) {
        return {
          allowed: false,
          limit: this.#options.limit,
          remaining: 0,
          resetAt: cachedUntil,
          retryAfterMs: wait,
          policy: this.#options.policy,
          source: 'cache',
          reason: 'limit',
        }
      }
      this.#blocked!.delete(key)
    }
    if (cost > this.#options.capacity) return this.#oversized(key)
    let decision: RawDecision
    try {
      decision = await this.#run('limit', key, MODE.consume, cost)
    } catch (error) {
      if (!isPolicyError(error)) throw error
      return this.#decideWithoutRedis(key, cost, error)
    }
    // Only a cost-1 denial proves every request is denied until retryAfter; larger costs might not be.
    if (!decision.allowed && cost === 1 && this.#blocked && decision.retryAfterMs > 0) {
      this.#blocked.set(key, Date.now() + decision.retryAfterMs)
    }
    return this.#result(decision)
  }

  /** A cost above the capacity can never be admitted: report the real state, touch nothing. */
  async #oversized(key: string): Promise<RateLimitResult> {
    const o = this.#options
    let current: RateLimitResult
    try {
      current = this.#result(await this.#run('peek', key, MODE.dryRun, 0))
    } catch {
      current = {
        allowed: false,
        limit: o.limit,
        remaining: 0,
        resetAt: Date.now(),
        retryAfterMs: 0,
        policy: o.policy,
        source: 'fail-closed',
      }
    }
    return {
      ...current,
      allowed: false,
      retryAfterMs: Number.POSITIVE_INFINITY,
      reason: 'cost-exceeds-limit',
    }
  }

  /** The current state without consuming anything: `allowed` tells whether a cost-1 request would pass now. */
  peek(key: string): Promise<RateLimitResult> {
    return promised(() => {
      requireKey(key)
      return instrument({ package: 'ratelimit', operation: 'peek' }, async () => {
        // A dry run of cost 1 answers exactly that question; add the unit back to report what is left.
        const d = await this.#run('peek', key, MODE.dryRun, 1)
        return this.#result(d.allowed ? { ...d, remaining: d.remaining + 1 } : d)
      })
    })
  }

  /** Forgets all state for `key`, including a block. */
  reset(key: string): Promise<void> {
    return promised(() => {
      requireKey(key)
      this.#blocked?.delete(key)
      return instrument({ package: 'ratelimit', operation: 'reset' }, async () => {
        await this.#guard.run('ratelimit.reset', () => this.#options.redis.del(this.#key(key)))
      })
    })
  }

  /**
   * Denies every request for `key` for `ms` milliseconds, whatever the algorithm says. The block
   * replaces the key's state, so when it ends the key starts with its full quota.
   */
  block(key: string, ms: number): Promise<void> {
    return promised(() => {
      requireKey(key)
      requireTimeoutMs('ms', ms)
      this.#blocked?.set(key, Date.now() + ms)
      return instrument({ package: 'ratelimit', operation: 'block' }, async () => {
        await this.#run('block', key, MODE.block, ms)
      })
    })
  }

  /** Gives back `units` previously consumed (e.g. the request turned out not to count). */
  reward(key: string, units = 1): Promise<RateLimitResult> {
    return promised(() => {
      requireKey(key)
      requirePositiveInteger('units', units)
      this.#blocked?.delete(key)
      return instrument({ package: 'ratelimit', operation: 'reward' }, async () =>
        this.#result(await this.#run('reward', key, MODE.reward, units)),
      )
    })
  }
}
