import {
  assertUsableClient,
  InvalidArgumentError,
  type RedisClient,
  requireNonEmptyString,
  requireNonNegativeInteger,
  requirePositiveInteger,
} from '@rp/core'
import { type Codec, jsonCodec } from './codec.js'

export interface CacheOptions {
  redis: RedisClient
  /** Key namespace, e.g. `users`. */
  namespace: string
  /** Default time an entry is fresh. */
  ttlMs: number
  /** Default time a stale entry may still be served (getOrSet) while it is refreshed; default 0. */
  graceMs?: number
  /** In-process LRU in front of Redis; off unless given. */
  l1?: { maxEntries: number; ttlMs: number }
  /** Evict L1 when anyone writes the key, via Redis client-side caching; default false. */
  tracking?: boolean
  codec?: Codec
  /** Compress encoded values larger than this many bytes; default off. */
  compressAboveBytes?: number
  /** Longest a Redis call may take before the cache fails open; default 500. */
  timeoutMs?: number
  /** Loader lease: how long one process may hold the right to compute a key; default 10000. */
  leaseMs?: number
  /** Spread a namespace over this many hash slots on a cluster; default 1. */
  shards?: number
}

export interface ResolvedCacheOptions {
  redis: RedisClient
  namespace: string
  ttlMs: number
  graceMs: number
  l1: { maxEntries: number; ttlMs: number } | null
  tracking: boolean
  codec: Codec
  compressAboveBytes: number | null
  timeoutMs: number
  leaseMs: number
  shards: number
}

export function resolveCacheOptions(options: CacheOptions): ResolvedCacheOptions {
  if (!options || typeof options !== 'object') throw new InvalidArgumentError('options', 'must be an object')
  const redis = assertUsableClient(options.redis)
  const l1 = options.l1
    ? {
        maxEntries: requirePositiveInteger('l1.maxEntries', options.l1.maxEntries),
        ttlMs: requirePositiveInteger('l1.ttlMs', options.l1.ttlMs),
      }
    : null
  if (options.tracking && !l1)
    throw new InvalidArgumentError('tracking', 'needs l1: tracking keeps the in-process tier fresh')
  const codec = options.codec ?? jsonCodec
  if (typeof codec.encode !== 'function' || typeof codec.decode !== 'function') {
    throw new InvalidArgumentError('codec', 'must have encode(value) => string and decode(string) => value')
  }
  return {
    redis,
    namespace: requireNonEmptyString('namespace', options.namespace),
    ttlMs: requirePositiveInteger('ttlMs', options.ttlMs),
    graceMs: requireNonNegativeInteger('graceMs', options.graceMs ?? 0),
    l1,
    tracking: options.tracking === true,
    codec,
    compressAboveBytes:
      options.compressAboveBytes === undefined
        ? null
        : requireNonNegativeInteger('compressAboveBytes', options.compressAboveBytes),
    timeoutMs: requirePositiveInteger('timeoutMs', options.timeoutMs ?? 500),
    leaseMs: requirePositiveInteger('leaseMs', options.leaseMs ?? 10_000),
    shards: requirePositiveInteger('shards', options.shards ?? 1),
  }
}
