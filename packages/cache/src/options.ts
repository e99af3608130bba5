import {
  assertUsableClient,
  type BatchOption,
  InvalidArgumentError,
  keyspace,
  type RedisClient,
  requireBoolean,
  requireDurationMs,
  requireGivenOptions,
  requireIntegerInRange,
  requireKnownOptions,
  requireNonEmptyString,
  requireNonNegativeInteger,
  requireOptions,
  requirePositiveInteger,
  requireTimeoutMs,
} from '@rp/core/kit'
import { type Codec, jsonCodec } from './codec.js'

export interface CacheOptions extends BatchOption {
  redis: RedisClient
  /** Key namespace, e.g. `users` (the family's name for it, as in every other package). */
  prefix?: string
  /** @deprecated The same as `prefix`, kept from 0.1: give one of the two. */
  namespace?: string
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
  /** Spread a namespace over this many hash slots on a cluster, 1 to 1024; default 1. */
  shards?: number
}

/** A cache's resolved settings, as `cache.options` shows them (the client excepted). */
export type CacheSettings = Omit<ResolvedCacheOptions, 'redis'>

/** @internal */
export interface ResolvedCacheOptions {
  redis: RedisClient
  prefix: string
  /** @deprecated Same as prefix. */
  namespace: string
  ttlMs: number
  graceMs: number
  l1: { maxEntries: number; ttlMs: number } | null
  tracking: boolean
  codec: Codec
  compressAboveBytes: number | null
  timeoutMs: number
  batch: boolean
  leaseMs: number
  shards: number
}

export function resolveCacheOptions(options: CacheOptions): ResolvedCacheOptions {
  requireGivenOptions('options', options)
  requireKnownOptions('options', options, [
    'redis',
    'prefix',
    'namespace',
    'ttlMs',
    'graceMs',
    'l1',
    'tracking',
    'codec',
    'compressAboveBytes',
    'timeoutMs',
    'leaseMs',
    'shards',
    'batch',
  ])
  const redis = assertUsableClient(options.redis)
  if (options.prefix !== undefined && options.namespace !== undefined && options.prefix !== options.namespace)
    throw new InvalidArgumentError('prefix', 'and namespace name the same thing; give one of them')
  // Errors name the option the caller actually used.
  const option = options.prefix === undefined && options.namespace !== undefined ? 'namespace' : 'prefix'
  const namespace = requireNonEmptyString(option, options.prefix ?? options.namespace)
  keyspace(namespace, option)
  const l1Options = options.l1 === undefined ? undefined : requireOptions('l1', options.l1)
  if (l1Options) requireKnownOptions('l1', l1Options, ['maxEntries', 'ttlMs'])
  const l1 = l1Options
    ? {
        maxEntries: requirePositiveInteger('l1.maxEntries', l1Options.maxEntries),
        ttlMs: requireTimeoutMs('l1.ttlMs', l1Options.ttlMs),
      }
    : null
  const tracking = requireBoolean('tracking', options.tracking ?? false)
  if (tracking && !l1)
    throw new InvalidArgumentError('tracking', 'needs l1: tracking keeps the in-process tier fresh')
  const codec = options.codec ?? jsonCodec
  if (!codec || typeof codec.encode !== 'function' || typeof codec.decode !== 'function') {
    throw new InvalidArgumentError('codec', 'must have encode(value) => string and decode(string) => value')
  }
  return {
    redis,
    prefix: namespace,
    namespace,
    ttlMs: requireTimeoutMs('ttlMs', options.ttlMs),
    graceMs: requireDurationMs('graceMs', options.graceMs ?? 0),
    l1,
    tracking,
    codec,
    compressAboveBytes:
      options.compressAboveBytes === undefined
        ? null
        : requireNonNegativeInteger('compressAboveBytes', options.compressAboveBytes),
    timeoutMs: requireTimeoutMs('timeoutMs', options.timeoutMs ?? 500),
    batch: requireBoolean('batch', options.batch ?? true),
    leaseMs: requireTimeoutMs('leaseMs', options.leaseMs ?? 10_000),
    shards: requireIntegerInRange('shards', options.shards ?? 1, 1, 1024),
  }
}
