export { ALGORITHM_NAMES, type Algorithm } from './algorithms/index.js'
export {
  type ConcurrencyAcquireOptions,
  ConcurrencyLimiter,
  type ConcurrencyLimiterOptions,
  type Lease,
} from './concurrency-limiter.js'
export { RateLimitExceededError } from './errors.js'
export type { RateLimitEvent } from './events.js'
export { type LimitCallOptions, RateLimiter } from './limiter.js'
export { MultiLimiter, type MultiLimiterOptions } from './multi-limiter.js'
export type { FailurePolicy, LimiterSettings, RateLimiterOptions } from './options.js'
export type { DecisionSource, DenyReason, MultiLimitResult, RateLimitResult } from './result.js'
