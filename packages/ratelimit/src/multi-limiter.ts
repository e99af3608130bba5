import {
  type BatchOption,
  InvalidArgumentError,
  instrument,
  RedisGuard,
  requireArray,
  requireBoolean,
  requireKnownOptions,
  requireOptions,
  requireTimeoutMs,
} from '@rp/core/kit'
import { multiScript, type RawDecision } from './algorithms/index.js'
import { MODE } from './algorithms/prelude.js'
import { isPolicyError, nextNonce, reportFallback } from './guard.js'
import { type LimitCallOptions, type PolicySpec, policySpec, type RateLimiter } from './limiter.js'
import { MemoryFallback } from './memory-fallback.js'
import { type FailurePolicy, requireCost, requireKey, resolveFailure } from './options.js'
import { type MultiLimitResult, type RateLimitResult, toResult } from './result.js'

export interface MultiLimiterOptions extends BatchOption {
  /**
   * Default: the first limiter's policy. `{ fallback: 'memory' }` checks every policy in process,
   * all-or-nothing like the script: each policy keeps its own in-memory GCRA.
   */
  failure?: FailurePolicy
  /** Default: the first limiter's timeoutMs. */
  timeoutMs?: number
}

/**
 * Several policies checked together in one script (e.g. 10/s and 1000/h): either every policy
 * records the hit or none does. Keys of all policies share the caller's key as hash tag.
 */
export class MultiLimiter {
  /** The policies, in the order their results are reported. */
  readonly limiters: readonly RateLimiter[]
  readonly #specs: PolicySpec[]
  readonly #guard: RedisGuard
  readonly #failure: FailurePolicy
  readonly #fallbacks: MemoryFallback[] | null

  constructor(limiters: readonly RateLimiter[], options: MultiLimiterOptions = {}) {
    const list = requireArray<RateLimiter>('limiters', limiters)
    if (list.length === 0)
      throw new InvalidArgumentError('limiters', 'must be a non-empty array of RateLimiter')
    requireKnownOptions('options', requireOptions('options', options), ['failure', 'timeoutMs', 'batch'])
    this.#specs = list.map((l, i) => {
      const spec = policySpec(l)
      if (!spec) throw new InvalidArgumentError(`limiters[${i}]`, 'must be a RateLimiter')
      return spec
    })
    this.limiters = Object.freeze([...list])
    const first = this.#specs[0]!.options
    if (this.#specs.some((s) => s.options.redis !== first.redis)) {
      throw new InvalidArgumentError(
        'limiters',
        'must all use the same Redis client, so one script can check them atomically',
      )
    }
    const seen = new Set<string>()
    for (const s of this.#specs) {
      if (seen.has(s.id)) {
        throw new InvalidArgumentError(
          'limiters',
          `two limiters have the same prefix '${s.options.prefix}' and policy, so one request would count twice`,
        )
      }
      seen.add(s.id)
    }
    const failure = resolveFailure(options.failure ?? first.failure)
    this.#failure = failure
    this.#fallbacks =
      typeof failure === 'object'
        ? this.#specs.map(
            ({ options: o }) =>
              new MemoryFallback(o.limit, o.windowMs, o.capacity, failure.maxKeys ?? 10_000),
          )
        : null
    this.#guard = new RedisGuard(
      first.redis,
      requireTimeoutMs('timeoutMs', options.timeoutMs ?? first.timeoutMs),
      { batch: requireBoolean('batch', options.batch ?? first.batch) },
    )
  }

  #run(key: string, mode: number, cost: number): Promise<RawDecision[]> {
    const keys = this.#specs.map((s) => s.key(key))
    const args: Array<string | number> = [mode, cost, nextNonce(), this.#specs.length]
    for (const s of this.#specs)
      args.push(s.algorithmIndex, s.options.limit, s.options.windowMs, s.options.burst)
    return this.#guard.script('ratelimit.multi', multiScript, keys, args)
  }

  #combine(decisions: RawDecision[], override?: Partial<RateLimitResult>): MultiLimitResult {
    const results = decisions.map(
      (d, i): RateLimitResult =>
        ({ ...toResult(d, this.#specs[i]!.options), ...override }) as RateLimitResult,
    )
    const denied = results.filter((r) => !r.allowed)
    // The binding policy: the denial that lasts longest, or the one with least headroom.
    const binding =
      denied.length > 0
        ? denied.reduce((a, b) => (b.retryAfterMs > a.retryAfterMs ? b : a))
        : results.reduce((a, b) => (b.remaining < a.remaining ? b : a))
    return { ...binding, results }
  }

  limit(key: string, options: LimitCallOptions = {}): Promise<MultiLimitResult> {
    try {
      requireKey(key)
      const o = requireOptions('options', options)
      requireKnownOptions('options', o, ['cost'])
      const cost = requireCost(o.cost ?? 1)
      return this.#instrumented(key, cost)
    } catch (error) {
      return Promise.reject(error)
    }
  }

  #instrumented(key: string, cost: number): Promise<MultiLimitResult> {
    return instrument(
      { package: 'ratelimit', operation: 'multiLimit', attributes: { policies: this.#specs.length } },
      () => this.#limit(key, cost),
      (r) => (r.allowed ? 'allowed' : 'denied'),
    )
  }

  async #limit(key: string, cost: number): Promise<MultiLimitResult> {
    const oversized = this.#specs.some((s) => cost > s.options.capacity)
    try {
      if (oversized) {
        const current = await this.#run(key, MODE.dryRun, 0)
        const r = this.#combine(
          current.map((d, i) =>
            cost > this.#specs[i]!.options.capacity
              ? {
                  ...d,
                  allowed: false,
                  reason: 'cost-exceeds-limit' as const,
                  retryAfterMs: Number.POSITIVE_INFINITY,
                }
              : d,
          ),
        )
        return { ...r, allowed: false }
      }
      return this.#combine(await this.#run(key, MODE.consume, cost))
    } catch (error) {
      if (!isPolicyError(error)) throw error
      const fallbacks = this.#fallbacks
      reportFallback('multiLimit', fallbacks ? 'memory' : (this.#failure as 'open' | 'closed'), error)
      if (fallbacks) return this.#fromMemory(fallbacks, key, cost)
      const now = Date.now()
      const open = this.#failure === 'open'
      const decisions = this.#specs.map(
        (s): RawDecision => ({
          allowed: open,
          remaining: open ? Math.max(0, s.options.limit - cost) : 0,
          resetAt: now + (open ? s.options.windowMs : Math.min(s.options.windowMs, 1_000)),
          retryAfterMs: open ? 0 : Math.min(s.options.windowMs, 1_000),
          reason: 'limit',
        }),
      )
      return this.#combine(
        decisions,
        open ? { source: 'fail-open' } : { source: 'fail-closed', reason: 'redis-unavailable' },
      )
    }
  }

  /** The memory fallback, all-or-nothing: every policy is asked first, and consumed only if all admit. */
  #fromMemory(fallbacks: MemoryFallback[], key: string, cost: number): MultiLimitResult {
    const probe = fallbacks.map((f) => f.limit(key, cost, false))
    const all = probe.every((d) => d.allowed)
    const decisions = all ? fallbacks.map((f) => f.limit(key, cost, true)) : probe
    return this.#combine(
      decisions.map((d) => ({ ...d, reason: d.allowed ? ('ok' as const) : ('limit' as const) })),
      { source: 'memory' },
    )
  }
}
