import {
  assertUsableClient,
  type BatchOption,
  describe,
  InvalidArgumentError,
  keyspace,
  type RedisClient,
  requireBoolean,
  requireGivenOptions,
  requireKnownOptions,
  requireNonEmptyString,
  requireOneOf,
  requireOptions,
  requirePositiveInteger,
  requireTimeoutMs,
} from '@rp/core/kit'
import { ALGORITHM_NAMES, type Algorithm } from './algorithms/index.js'

/**
 * What limit() does when Redis is down, slow (past timeoutMs) or not connected:
 * - `'open'`: admit the request (availability first);
 * - `'closed'`: deny it (protection first);
 * - `{ fallback: 'memory' }`: decide with an in-process GCRA of the same limit, per process.
 */
export type FailurePolicy = 'open' | 'closed' | { fallback: 'memory'; maxKeys?: number }

interface CommonLimiterOptions extends BatchOption {
  redis: RedisClient
  /** Key namespace; default `rl`. Also the policy name in RateLimit headers. */
  prefix?: string
  /** Requests (units of cost) per window. */
  limit: number
  windowMs: number
  /** Default `'open'`. */
  failure?: FailurePolicy
  /** Longest a limit() call waits for Redis before the failure policy decides; default 1000. */
  timeoutMs?: number
  /**
   * Remember keys that are certainly denied until their retry time, in a bounded in-process LRU,
   * to spare Redis round trips under attack. It never admits a request Redis would deny. Off by
   * default; reset() clears it only in this process.
   */
  blockCache?: { maxKeys?: number }
}

/** The algorithms that take `burst`. */
export type BurstAlgorithm = 'gcra' | 'token-bucket'

/**
 * Options of a RateLimiter, discriminated on `algorithm`: `burst` is a compile error for the
 * windowed algorithms, which have no burst (and an InvalidArgumentError at run time).
 */
export type RateLimiterOptions =
  | (CommonLimiterOptions & {
      algorithm: BurstAlgorithm
      /** How many may arrive at once; default `limit`. */
      burst?: number
    })
  | (CommonLimiterOptions & {
      algorithm: Exclude<Algorithm, BurstAlgorithm>
      burst?: never
    })

/** A limiter's resolved policy, as `limiter.options` shows it. */
export type LimiterSettings = Omit<ResolvedLimiterOptions, 'redis'>

/** @internal */
export interface ResolvedLimiterOptions {
  redis: RedisClient
  prefix: string
  algorithm: Algorithm
  limit: number
  windowMs: number
  burst: number
  /** Most cost one request may carry. */
  capacity: number
  failure: FailurePolicy
  timeoutMs: number
  batch: boolean
  blockCacheMaxKeys: number
  policy: string
}

export function resolveFailure(failure: unknown): FailurePolicy {
  if (failure === undefined) return 'open'
  if (failure === 'open' || failure === 'closed') return failure
  if (
    typeof failure === 'object' &&
    failure !== null &&
    (failure as { fallback?: unknown }).fallback === 'memory'
  ) {
    requireKnownOptions('failure', failure, ['fallback', 'maxKeys'])
    const maxKeys = (failure as { maxKeys?: unknown }).maxKeys
    if (maxKeys !== undefined) requirePositiveInteger('failure.maxKeys', maxKeys)
    return failure as FailurePolicy
  }
  throw new InvalidArgumentError(
    'failure',
    `must be 'open', 'closed' or { fallback: 'memory' }, got ${describe(failure)}`,
  )
}

/** Largest `limit` a sliding-log limiter takes: it stores one sorted-set member per unit. */
export const SLIDING_LOG_MAX_LIMIT = 10_000

export function resolveLimiterOptions(options: RateLimiterOptions): ResolvedLimiterOptions {
  requireGivenOptions('options', options)
  requireKnownOptions('options', options, [
    'redis',
    'prefix',
    'algorithm',
    'limit',
    'windowMs',
    'burst',
    'failure',
    'timeoutMs',
    'blockCache',
    'batch',
  ])
  assertUsableClient(options.redis)
  const algorithm = requireOneOf('algorithm', options.algorithm, ALGORITHM_NAMES)
  const limit = requirePositiveInteger('limit', options.limit)
  // The sliding log stores one member per admitted unit: cap it, so no single call (cost <= limit)
  // can make Redis write and hold an unbounded set while every other client waits.
  if (algorithm === 'sliding-log' && limit > SLIDING_LOG_MAX_LIMIT)
    throw new InvalidArgumentError(
      'limit',
      `must be at most ${SLIDING_LOG_MAX_LIMIT} for 'sliding-log' (one stored entry per unit); use 'sliding-window' for larger limits, got ${limit}`,
    )
  const windowMs = requireTimeoutMs('windowMs', options.windowMs)
  const bursty = algorithm === 'gcra' || algorithm === 'token-bucket'
  if (options.burst !== undefined && !bursty) {
    throw new InvalidArgumentError('burst', `applies only to 'gcra' and 'token-bucket', not '${algorithm}'`)
  }
  const burst = options.burst === undefined ? limit : requirePositiveInteger('burst', options.burst)
  const prefix = requireNonEmptyString('prefix', options.prefix ?? 'rl')
  keyspace(prefix)
  const timeoutMs = requireTimeoutMs('timeoutMs', options.timeoutMs ?? 1_000)
  let blockCacheMaxKeys = 0
  if (options.blockCache !== undefined) {
    const blockCache = requireOptions('blockCache', options.blockCache)
    requireKnownOptions('blockCache', blockCache, ['maxKeys'])
    blockCacheMaxKeys = requirePositiveInteger('blockCache.maxKeys', blockCache.maxKeys ?? 10_000)
  }
  const seconds = windowMs / 1000
  return {
    redis: options.redis,
    prefix,
    algorithm,
    limit,
    windowMs,
    burst,
    capacity: bursty ? burst : limit,
    failure: resolveFailure(options.failure),
    timeoutMs,
    batch: requireBoolean('batch', options.batch ?? true),
    blockCacheMaxKeys,
    policy: `${limit};w=${Number.isInteger(seconds) ? seconds : seconds.toFixed(3)}${bursty && burst !== limit ? `;burst=${burst}` : ''}`,
  }
}

export function requireCost(cost: unknown): number {
  return requirePositiveInteger('cost', cost)
}

export function requireKey(key: unknown): string {
  return requireNonEmptyString('key', key)
}
