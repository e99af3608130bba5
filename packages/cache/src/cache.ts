import {
  AbortError,
  globMatcher,
  InvalidArgumentError,
  instrument,
  Notifier,
  promised,
  requireArray,
  requireBoolean,
  requireDurationMs,
  requireFunction,
  requireKnownOptions,
  requireNonEmptyString,
  requireOptions,
  requireSignal,
  requireStringArray,
  requireTimeoutMs,
} from '@rp/core/kit'
import { CacheKeys } from './cache-keys.js'
import {
  type CacheStats,
  Entries,
  escapeTag,
  MAX_TAGS_PER_ENTRY,
  newStats,
  type ResolvedSet,
  type SetOptions,
} from './entry.js'
import { bounded, GetOrSetHandler, type GetOrSetOptions } from './get-or-set.js'
import { LocalTier, MISS } from './local-tier.js'
import { type CacheOptions, type CacheSettings, resolveCacheOptions } from './options.js'
import { RemoteTier } from './remote-tier.js'
import { Tiers } from './tiers.js'

export type { CacheStats, SetOptions } from './entry.js'
export { MAX_TAGS_PER_ENTRY } from './entry.js'
export type { GetOrSetOptions } from './get-or-set.js'

/** The options set() takes, and getOrSet() on top of them. */
const SET_OPTIONS = ['ttlMs', 'graceMs', 'tags']
const GET_OR_SET_OPTIONS = [
  ...SET_OPTIONS,
  'softTimeoutMs',
  'hardTimeoutMs',
  'negativeTtlMs',
  'earlyRefresh',
  'signal',
]

/**
 * A two-tier cache: an optional in-process LRU (kept fresh by Redis client-side caching) in front of
 * Redis. A Redis hit is one script, tag check included; an L1 hit is no round trip. This class
 * validates and delegates: RemoteTier talks to Redis, LocalTier keeps L1, GetOrSetHandler loads.
 */
export class Cache {
  /** The resolved settings (the client excepted). */
  readonly options: Readonly<CacheSettings>
  readonly #keys: CacheKeys
  readonly #tiers: Tiers
  readonly #loader: GetOrSetHandler
  readonly #notifier: Notifier
  /** This process's loads by key (and hard timeout), with when each began (performance.now()). */
  readonly #inflight = new Map<string, { load: Promise<unknown>; at: number }>()
  readonly #stats = newStats()

  constructor(options: CacheOptions) {
    const { redis, ...settings } = resolveCacheOptions(options)
    this.options = Object.freeze(settings)
    const o = this.options
    this.#keys = new CacheKeys(o.prefix, o.shards)
    this.#tiers = new Tiers(
      new RemoteTier(redis, this.#keys, { timeoutMs: o.timeoutMs, leaseMs: o.leaseMs, batch: o.batch }),
      new LocalTier(redis, this.#keys, o.codec, { l1: o.l1, tracking: o.tracking }),
      new Entries(o.codec, o.compressAboveBytes, this.#stats),
    )
    this.#notifier = new Notifier(redis)
    this.#loader = new GetOrSetHandler(this.#tiers, this.#notifier, (s) => this.#resolveSet(s), o.timeoutMs)
  }

  /** Resolves once tracking is armed (a no-op without tracking). Reads before that skip L1. */
  ready(): Promise<void> {
    return this.#tiers.local.ready()
  }

  /** `path`: where the options sit in the call, so an error names them as the caller wrote them. */
  #resolveSet(options: SetOptions | undefined, path = ''): ResolvedSet {
    const o = requireOptions(path ? path.slice(0, -1) : 'options', options)
    const tags = o.tags === undefined ? [] : requireStringArray(`${path}tags`, o.tags, MAX_TAGS_PER_ENTRY)
    return {
      ttlMs: requireTimeoutMs(`${path}ttlMs`, o.ttlMs ?? this.options.ttlMs),
      graceMs: requireDurationMs(`${path}graceMs`, o.graceMs ?? this.options.graceMs),
      tags: [...new Set(tags.map(escapeTag))],
    }
  }

  /** The value while fresh; undefined on a miss, past ttlMs, or when Redis cannot answer in time. A stored null is null. */
  get<T = unknown>(key: string): Promise<T | undefined> {
    return promised(() => {
      requireNonEmptyString('key', key)
      return instrument({ package: 'cache', operation: 'get' }, () => this.#tiers.read<T>(key))
    })
  }

  /**
   * Stores a value: anything the codec round-trips exactly (not undefined). Rejects with
   * InvalidArgumentError for a value the codec refuses, and with the Redis error if Redis cannot
   * take it (RedisOutOfMemoryError at maxmemory).
   */
  set(key: string, value: unknown, options: SetOptions = {}): Promise<void> {
    return promised(() => {
      requireNonEmptyString('key', key)
      if (value === undefined)
        throw new InvalidArgumentError(
          'value',
          `is undefined for key ${JSON.stringify(key)}; delete the key instead`,
        )
      requireKnownOptions('options', requireOptions('options', options), SET_OPTIONS)
      const set = this.#resolveSet(options)
      const encoded = this.#tiers.entries.encode(key, value, false)
      return instrument({ package: 'cache', operation: 'set' }, () =>
        this.#tiers.write(key, encoded, set, 0, ''),
      )
    })
  }

  /**
   * The cached value, or the factory's. Concurrent calls share one factory call per process, and a
   * lease in Redis elects one loader across processes; the others wait for its value (woken by
   * pub/sub) or serve a stale value within grace. A factory value the codec refuses rejects with
   * InvalidArgumentError, and the lease is freed for the next caller.
   */
  getOrSet<T>(key: string, factory: () => Promise<T> | T, options: GetOrSetOptions = {}): Promise<T> {
    return promised(() => {
      requireNonEmptyString('key', key)
      requireFunction('factory', factory)
      const o = requireOptions('options', options)
      if ('timeoutMs' in o)
        throw new InvalidArgumentError(
          'timeoutMs',
          "is the cache's bound on Redis calls, set on the Cache; the soft factory timeout is softTimeoutMs",
        )
      requireKnownOptions('options', o, GET_OR_SET_OPTIONS)
      this.#resolveSet(o)
      if (o.hardTimeoutMs !== undefined) requireTimeoutMs('hardTimeoutMs', o.hardTimeoutMs)
      if (o.softTimeoutMs !== undefined) requireTimeoutMs('softTimeoutMs', o.softTimeoutMs)
      if (o.negativeTtlMs !== undefined) requireTimeoutMs('negativeTtlMs', o.negativeTtlMs)
      if (o.earlyRefresh !== undefined) requireBoolean('earlyRefresh', o.earlyRefresh)
      const signal = requireSignal('signal', o.signal)
      if (signal?.aborted) throw new AbortError(`getOrSet '${key}'`, { cause: signal.reason })
      const local = this.#tiers.local.get(key)
      if (local !== MISS) {
        this.#stats.l1Hits++
        return Promise.resolve(local as T)
      }
      // Calls share a load only under the same hard timeout: the factory runs under the first
      // caller's, and a caller that set none must not fail with another's TimeoutError. Other
      // loads of the key still meet at the Redis lease, which elects one loader.
      const flight = o.hardTimeoutMs === undefined ? key : `${key}\n${o.hardTimeoutMs}`
      const joined = this.#inflight.get(flight)
      let load: Promise<T>
      // A factory that never settles must not hold the key in this process for good: once its
      // lease has lapsed, as for the other processes, a later caller starts a load of its own.
      if (joined && performance.now() - joined.at < this.options.leaseMs) load = joined.load as Promise<T>
      else {
        const entry = { load: Promise.resolve() as Promise<unknown>, at: performance.now() }
        load = instrument({ package: 'cache', operation: 'getOrSet' }, () =>
          this.#loader.run(key, factory, o),
        ).finally(() => {
          if (this.#inflight.get(flight) === entry) this.#inflight.delete(flight)
        })
        entry.load = load
        this.#inflight.set(flight, entry)
      }
      // Hard means hard: whatever the call waits for (Redis, the subscriber, another loader, the
      // factory), this caller gets its answer by then, or when its signal aborts.
      return o.hardTimeoutMs === undefined && !signal ? load : bounded(load, key, o.hardTimeoutMs, signal)
    })
  }

  /** Values in key order; each is undefined on a miss. */
  getMany<T = unknown>(keys: readonly string[]): Promise<Array<T | undefined>> {
    return promised(() => {
      requireArray('keys', keys).forEach((k, i) => {
        requireNonEmptyString(`keys[${i}]`, k)
      })
      return Promise.all(keys.map((k) => this.get<T>(k)))
    })
  }

  setMany(entries: ReadonlyArray<{ key: string; value: unknown } & SetOptions>): Promise<void> {
    return promised(async () => {
      const list = requireArray<{ key: string; value: unknown } & SetOptions>('entries', entries)
      // Every entry is checked before the first write, so a bad one leaves nothing half-written.
      list.forEach((e, i) => {
        if (typeof e !== 'object' || e === null || Array.isArray(e))
          throw new InvalidArgumentError(`entries[${i}]`, 'must be an object { key, value, ...options }')
        requireKnownOptions(`entries[${i}]`, e, ['key', 'value', ...SET_OPTIONS])
        requireNonEmptyString(`entries[${i}].key`, e.key)
        if (e.value === undefined)
          throw new InvalidArgumentError(`entries[${i}].value`, 'is undefined; delete the key instead')
        this.#resolveSet(e, `entries[${i}].`)
      })
      await Promise.all(list.map(({ key, value, ...options }) => this.set(key, value, options)))
    })
  }

  delete(key: string): Promise<void> {
    return promised(() => {
      requireNonEmptyString('key', key)
      return this.deleteMany([key])
    })
  }

  /** Removes keys, one UNLINK per shard. */
  deleteMany(keys: readonly string[]): Promise<void> {
    return promised(async () => {
      const list = requireArray<string>('keys', keys)
      list.forEach((key, i) => {
        requireNonEmptyString(`keys[${i}]`, key)
      })
      this.#tiers.local.invalidate(list)
      await instrument({ package: 'cache', operation: 'delete' }, () => this.#tiers.remote.delete(list))
    })
  }

  /** Every entry written with `tag` reads as a miss from now on: one command per shard. */
  invalidateTag(tag: string): Promise<void> {
    return promised(async () => {
      const name = escapeTag(requireNonEmptyString('tag', tag))
      const local = this.#tiers.local
      local.dropTag(name)
      await instrument({ package: 'cache', operation: 'invalidateTag' }, () =>
        this.#tiers.remote.invalidateTag(name, this.options.ttlMs + this.options.graceMs),
      )
      local.dropTag(name)
    })
  }

  /**
   * Deletes entries whose key matches a glob (`profile:*`), by SCAN over every master and batched
   * UNLINK: only this cache's own entries, each Redis call bounded by timeoutMs.
   */
  deleteByPattern(glob: string): Promise<number> {
    return promised(() => {
      requireNonEmptyString('glob', glob)
      // The SCAN pattern is a superset over escaped keys; the user's glob decides on the real key.
      const matches = globMatcher(glob)
      this.#tiers.local.clear()
      return instrument({ package: 'cache', operation: 'deleteByPattern' }, () =>
        this.#tiers.remote.deleteMatching(this.#keys.entryPattern(glob), (k) => {
          const userKey = this.#keys.userKeyOf(k)
          return userKey !== null && matches(userKey)
        }),
      )
    })
  }

  /** Deletes every key this cache wrote (entries, leases, tag versions), and nothing else. */
  clear(): Promise<number> {
    return promised(() => {
      this.#tiers.local.clear()
      return instrument({ package: 'cache', operation: 'clear' }, () =>
        this.#tiers.remote.deleteMatching(this.#keys.allPattern(), (k) => this.#keys.owns(k)),
      )
    })
  }

  stats(): Readonly<CacheStats> {
    return { ...this.#stats }
  }

  /** Closes the tracking and pub/sub connections this cache opened (not the client you passed); bounded. */
  async close(): Promise<void> {
    await Promise.all([this.#tiers.local.close(), this.#notifier.close()])
  }
}
