import type { RawDecision } from './algorithms/index.js'
import type { ResolvedLimiterOptions } from './options.js'

/** Who decided: Redis itself, the local blocked-key cache, or the failure policy. */
export type DecisionSource = 'redis' | 'cache' | 'fail-open' | 'fail-closed' | 'memory'

export type DenyReason = 'limit' | 'blocked' | 'cost-exceeds-limit' | 'redis-unavailable'

export interface RateLimitResult {
  readonly allowed: boolean
  readonly limit: number
  readonly remaining: number
  /** Epoch ms (server clock) when the full quota is available again. */
  readonly resetAt: number
  /** 0 when allowed; how long to wait before this request could be admitted. */
  readonly retryAfterMs: number
  /** `limit;w=seconds`, the policy that produced this result. */
  readonly policy: string
  /** `redis` unless Redis could not answer and the failure policy (or local cache) decided. */
  readonly source: DecisionSource
  /** Why the request was denied; absent when allowed. */
  readonly reason?: DenyReason
}

export interface MultiLimitResult extends RateLimitResult {
  /** One result per policy, in the order the limiters were given. */
  readonly results: readonly RateLimitResult[]
}

/** A script's decision as the result a caller sees, for the policy that made it. */
export function toResult(
  d: RawDecision,
  options: Pick<ResolvedLimiterOptions, 'limit' | 'policy'>,
): RateLimitResult {
  const base = {
    allowed: d.allowed,
    limit: options.limit,
    remaining: d.remaining,
    resetAt: d.resetAt,
    retryAfterMs: d.allowed ? 0 : d.retryAfterMs,
    policy: options.policy,
    source: 'redis' as const,
  }
  return d.allowed ? base : { ...base, reason: d.reason === 'ok' ? 'limit' : d.reason }
}
