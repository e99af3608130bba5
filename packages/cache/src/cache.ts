import { randomUUID } from 'node:crypto'
import {
  AbortError,
  deleteByPattern,
  escapeKeyPart,
  globMatcher,
  InvalidArgumentError,
  instrument,
  isConnectionError,
  isOutOfMemoryError,
  Notifier,
  promised,
  RedisGuard,
  RedisUnavailableError,
  requireArray,
  requireBoolean,
  requireFunction,
  requireNonEmptyString,
  requireNonNegativeInteger,
  requireOptions,
  requireSignal,
  requireStringArray,
  requireTimeoutMs,
  WaitTimeoutError,
  withTimeout,
} from '@rp/core/kit'
import { LRUCache } from 'lru-cache'
import { CacheKeys } from './cache-keys.js'
import { decodeEntry, type Encoded, encodeEntry } from './codec.js'
import { emit } from './events.js'
import {
  type CacheOptions,
  type CacheSettings,
  type ResolvedCacheOptions,
  resolveCacheOptions,
} from './options.js'
import {
  invalidateTagScript,
  type RawEntry,
  readOrLeaseScript,
  readScript,
  releaseLeaseScript,
  writeScript,
} from './scripts.js'
import { Tracker } from './tracking.js'

export interface SetOptions {
  ttlMs?: number
  graceMs?: number
  /** At most 100 non-empty strings; any characters. */
  tags?: readonly string[]
}

export interface GetOrSetOptions extends SetOptions {
  /** Soft factory timeout: with a stale value at hand, return it after this long and let the refresh finish. */
  softTimeoutMs?: number
  /** Hard timeout: the call rejects with TimeoutError after this long, whatever it is waiting for. */
  hardTimeoutMs?: number
  /** Cache "not found" (a factory returning undefined) for this long. */
  negativeTtlMs?: number
  /** Refresh early, with a probability that rises as expiry nears, weighted by the factory's cost (XFetch). */
  earlyRefresh?: boolean
  /**
   * Stops waiting: this call rejects with AbortError. A load it started goes on for the other
   * callers sharing it (and is cached).
   */
  signal?: AbortSignal
}

export interface CacheStats {
  hits: number
  misses: number
  staleHits: number
  l1Hits: number
  refreshes: number
  factoryCalls: number
  errors: number
  decodeErrors: number
}

/** Most tags one entry may carry: each is checked on every read of the entry. */
export const MAX_TAGS_PER_ENTRY = 100

interface Entry {
  value: unknown
  negative: boolean
  /** ms until stale at read time (negative: stale, within grace). */
  freshMs: number
  factoryMs: number
}

/** L1 keeps the encoded form: every hit decodes a fresh copy, so no caller can mutate another's value. */
interface L1Entry {
  data: string
  flags: string
  freshUntil: number
  /** Escaped tag names, as stored in Redis. */
  tags: readonly string[]
}

interface ResolvedSet {
  ttlMs: number
  graceMs: number
  /** Escaped: injective, and free of the newline the entry's tag list uses as separator. */
  tags: string[]
}

/** Escapes a tag injectively: core's key escaping, plus the newline (which it leaves alone). */
function escapeTag(tag: string): string {
  return escapeKeyPart(tag).replace(/\n/g, '%0A')
}

/** The tag names of an entry's stored tag list (`tag\nversion\n`…). */
function tagNames(field: string): string[] {
  if (!field) return []
  const parts = field.split('\n')
  const names: string[] = []
  for (let i = 0; i + 1 < parts.length; i += 2) names.push(parts[i]!)
  return names
}

const NONE = Symbol('none')

function hardTimeout(key: string, ms: number): WaitTimeoutError {
  return new WaitTimeoutError(key, ms, 'hardTimeoutMs ran out', { what: 'get or set' })
}

/** `load` for this caller: rejected by its hard timeout (WaitTimeoutError) or its signal (AbortError). */
function bounded<T>(
  load: Promise<T>,
  key: string,
  ms: number | undefined,
  signal: AbortSignal | undefined,
): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const timer =
      ms === undefined ? undefined : setTimeout(() => finish(() => reject(hardTimeout(key, ms))), ms)
    timer?.unref()
    const onAbort = () => finish(() => reject(new AbortError(`getOrSet '${key}'`, { cause: signal?.reason })))
    function finish(settle: () => void) {
      clearTimeout(timer)
      signal?.removeEventListener('abort', onAbort)
      settle()
    }
    signal?.addEventListener('abort', onAbort, { once: true })
    load.then(
      (value) => finish(() => resolve(value)),
      (error: unknown) => finish(() => reject(error)),
    )
  })
}

/**
 * A two-tier cache: an optional in-process LRU (kept fresh by Redis client-side caching) in front of
 * Redis. A Redis hit is one script, tag check included; an L1 hit is no round trip.
 */
export class Cache {
  /** The resolved settings (the client excepted). */
  readonly options: Readonly<CacheSettings>
  readonly #o: Readonly<ResolvedCacheOptions>
  readonly #keys: CacheKeys
  readonly #l1: LRUCache<string, L1Entry> | null
  readonly #inflight = new Map<string, Promise<unknown>>()
  readonly #guard: RedisGuard
  readonly #notifier: Notifier
  readonly #tracker: Tracker | null
  #trackerStarted: Promise<void> | null = null
  // Bumped by every invalidation this process sees: a read that started before one must not fill
  // L1 with what it read, since that may be exactly what was invalidated.
  #generation = 0
  readonly #stats: CacheStats = {
    hits: 0,
    misses: 0,
    staleHits: 0,
    l1Hits: 0,
    refreshes: 0,
    factoryCalls: 0,
    errors: 0,
    decodeErrors: 0,
  }

  constructor(options: CacheOptions) {
    this.#o = Object.freeze(resolveCacheOptions(options))
    const o = this.#o
    const { redis: _, ...settings } = o
    this.options = Object.freeze(settings)
    this.#keys = new CacheKeys(o.namespace, o.shards)
    this.#guard = new RedisGuard(o.redis, o.timeoutMs, { breaker: true })
    this.#l1 = o.l1 ? new LRUCache({ max: o.l1.maxEntries, ttl: o.l1.ttlMs }) : null
    this.#notifier = new Notifier(o.redis)
    this.#tracker = o.tracking
      ? new Tracker(o.redis, this.#keys.trackingPrefix, (keys) => this.#onInvalidate(keys))
      : null
  }

  /** Resolves once tracking is armed (a no-op without tracking). Reads before that skip L1. */
  ready(): Promise<void> {
    if (!this.#tracker) return Promise.resolve()
    // Never rejects: without tracking the cache still works, it just keeps L1 out of the way.
    this.#trackerStarted ??= this.#tracker.start().catch((error: unknown) => {
      this.#trackerStarted = null
      emit({ package: 'cache', event: 'tracking-failed', error })
    })
    return this.#trackerStarted
  }

  #onInvalidate(keys: string[] | null): void {
    this.#generation++
    if (!this.#l1) return
    if (keys === null) {
      this.#l1.clear()
      return
    }
    for (const key of keys) {
      if (this.#keys.isTagsKey(key)) {
        this.#l1.clear()
        return
      }
      const userKey = this.#keys.userKeyOf(key)
      if (userKey !== null) this.#l1.delete(userKey)
    }
  }

  #l1Usable(): boolean {
    if (!this.#l1) return false
    if (!this.#tracker) return true
    void this.ready()
    return this.#tracker.active
  }

  /** The L1 value (a fresh decoded copy; undefined for a cached "not found"), or NONE. */
  #fromL1(key: string): unknown {
    if (!this.#l1Usable()) return NONE
    const entry = this.#l1!.get(key)
    if (!entry || entry.freshUntil <= Date.now()) return NONE
    try {
      const decoded = decodeEntry(this.options.codec, entry.data, entry.flags)
      this.#stats.l1Hits++
      return decoded.negative ? undefined : decoded.value
    } catch {
      this.#l1!.delete(key)
      return NONE
    }
  }

  #toL1(
    key: string,
    data: string,
    flags: string,
    freshMs: number,
    tags: readonly string[],
    generation: number,
  ): void {
    if (!this.#l1 || freshMs <= 0 || generation !== this.#generation) return
    this.#l1.set(
      key,
      { data, flags, freshUntil: Date.now() + freshMs, tags },
      { ttl: Math.min(this.options.l1!.ttlMs, freshMs) },
    )
  }

  /**
   * Runs a Redis call through core's call path: bounded by timeoutMs, failing at once instead of
   * joining the offline queue while the client reconnects, and behind a circuit breaker that only
   * connection failures and timeouts (never a data error) count towards.
   */
  #redis<T>(operation: string, call: () => Promise<T>): Promise<T> {
    return this.#guard.run(`cache.${operation}`, call)
  }

  #decode(key: string, raw: RawEntry): Entry | null {
    try {
      const d = decodeEntry(this.options.codec, raw[0], raw[1])
      return { value: d.value, negative: d.negative, freshMs: raw[2], factoryMs: raw[3] }
    } catch (error) {
      this.#corrupt(key, error)
      return null
    }
  }

  #corrupt(key: string, error?: unknown): void {
    this.#stats.decodeErrors++
    emit({ package: 'cache', event: 'decode-error', key, error })
  }

  #failOpen(operation: string, error: unknown): void {
    this.#stats.errors++
    emit({ package: 'cache', event: 'redis-error', operation, error })
  }

  #resolveSet(options: SetOptions | undefined): ResolvedSet {
    const o = requireOptions('options', options)
    const tags = o.tags === undefined ? [] : requireStringArray('tags', o.tags, MAX_TAGS_PER_ENTRY)
    return {
      ttlMs: requireTimeoutMs('ttlMs', o.ttlMs ?? this.options.ttlMs),
      graceMs: requireNonNegativeInteger('graceMs', o.graceMs ?? this.options.graceMs),
      tags: [...new Set(tags.map(escapeTag))],
    }
  }

  #encode(key: string, value: unknown, negative: boolean): Encoded {
    return encodeEntry(this.options.codec, key, value, negative, this.options.compressAboveBytes)
  }

  /** The value while fresh; undefined on a miss, past ttlMs, or when Redis cannot answer in time. A stored null is null. */
  get<T = unknown>(key: string): Promise<T | undefined> {
    return promised(() => {
      requireNonEmptyString('key', key)
      return instrument({ package: 'cache', operation: 'get' }, () => this.#get<T>(key))
    })
  }

  async #get<T>(key: string): Promise<T | undefined> {
    const local = this.#fromL1(key)
    if (local !== NONE) return local as T | undefined
    const generation = this.#generation
    let raw: RawEntry | -1 | null
    try {
      raw = await this.#redis('get', () =>
        readScript.run(this.#o.redis, [this.#keys.entry(key), this.#keys.tagsFor(key)]),
      )
    } catch (error) {
      this.#failOpen('get', error)
      this.#stats.misses++
      return undefined
    }
    if (raw === -1) this.#corrupt(key)
    const entry = raw && raw !== -1 ? this.#decode(key, raw) : null
    if (!entry || entry.freshMs <= 0) {
      this.#stats.misses++
      return undefined
    }
    this.#stats.hits++
    const r = raw as RawEntry
    this.#toL1(key, r[0], r[1], r[2], tagNames(r[4]), generation)
    return (entry.negative ? undefined : entry.value) as T | undefined
  }

  async #write(
    key: string,
    encoded: Encoded,
    set: ResolvedSet,
    factoryMs: number,
    lease: string,
  ): Promise<void> {
    const o = this.#o
    const generation = ++this.#generation
    this.#l1?.delete(key)
    await this.#redis('set', () =>
      writeScript.run(
        o.redis,
        [this.#keys.entry(key), this.#keys.tagsFor(key), this.#keys.lease(key)],
        [
          encoded.data,
          encoded.flags,
          set.ttlMs,
          set.graceMs,
          Math.round(factoryMs),
          lease,
          lease ? this.#keys.loadedChannel : '',
          key,
          ...set.tags,
        ],
      ),
    )
    this.#toL1(key, encoded.data, encoded.flags, set.ttlMs, set.tags, generation)
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
      const set = this.#resolveSet(options)
      const encoded = this.#encode(key, value, false)
      return instrument({ package: 'cache', operation: 'set' }, () => this.#write(key, encoded, set, 0, ''))
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
      this.#resolveSet(o)
      if (o.hardTimeoutMs !== undefined) requireTimeoutMs('hardTimeoutMs', o.hardTimeoutMs)
      if (o.softTimeoutMs !== undefined) requireTimeoutMs('softTimeoutMs', o.softTimeoutMs)
      if (o.negativeTtlMs !== undefined) requireTimeoutMs('negativeTtlMs', o.negativeTtlMs)
      if (o.earlyRefresh !== undefined) requireBoolean('earlyRefresh', o.earlyRefresh)
      const signal = requireSignal('signal', o.signal)
      if (signal?.aborted) throw new AbortError(`getOrSet '${key}'`, { cause: signal.reason })
      const local = this.#fromL1(key)
      if (local !== NONE) return Promise.resolve(local as T)
      let load = this.#inflight.get(key) as Promise<T> | undefined
      if (!load) {
        load = instrument({ package: 'cache', operation: 'getOrSet' }, () =>
          this.#getOrSet(key, factory, o),
        ).finally(() => this.#inflight.delete(key))
        this.#inflight.set(key, load)
      }
      // Hard means hard: whatever the call waits for (Redis, the subscriber, another loader, the
      // factory), this caller gets its answer by then, or when its signal aborts.
      return o.hardTimeoutMs === undefined && !signal ? load : bounded(load, key, o.hardTimeoutMs, signal)
    })
  }

  async #runFactory<T>(
    key: string,
    factory: () => Promise<T> | T,
    options: GetOrSetOptions,
  ): Promise<{ value: T; ms: number }> {
    this.#stats.factoryCalls++
    const started = performance.now()
    const run = Promise.resolve().then(factory)
    const value = options.hardTimeoutMs
      ? await withTimeout(run, options.hardTimeoutMs, `cache factory for ${JSON.stringify(key)}`)
      : await run
    return { value, ms: performance.now() - started }
  }

  /** Stores the factory's value as the lease holder. A value the codec refuses throws (InvalidArgumentError). */
  async #store<T>(key: string, value: T, ms: number, options: GetOrSetOptions, lease: string): Promise<void> {
    const negative = value === undefined
    if (negative && options.negativeTtlMs === undefined) {
      await this.#releaseLease(key, lease)
      return
    }
    const set = this.#resolveSet(
      negative ? { ...options, ttlMs: options.negativeTtlMs, graceMs: 0 } : options,
    )
    const encoded = this.#encode(key, value, negative)
    try {
      await this.#write(key, encoded, set, ms, lease)
    } catch (error) {
      // The value is good, Redis could not take it: serve it uncached, and let the next caller load.
      this.#failOpen('getOrSet.write', error)
      await this.#releaseLease(key, lease)
    }
  }

  async #releaseLease(key: string, lease: string): Promise<void> {
    if (!lease) return
    await this.#redis('releaseLease', () =>
      releaseLeaseScript.run(this.#o.redis, [this.#keys.lease(key)], [lease]),
    ).catch(() => {})
  }

  /** Computes and stores the value as the lease holder; on any failure frees the lease for others. */
  async #loadAsOwner<T>(
    key: string,
    factory: () => Promise<T> | T,
    options: GetOrSetOptions,
    lease: string,
  ): Promise<T> {
    try {
      const { value, ms } = await this.#runFactory(key, factory, options)
      await this.#store(key, value, ms, options, lease)
      return value
    } catch (error) {
      await this.#releaseLease(key, lease)
      throw error
    }
  }

  #refreshInBackground<T>(
    key: string,
    factory: () => Promise<T> | T,
    options: GetOrSetOptions,
    lease: string,
  ): Promise<T> {
    this.#stats.refreshes++
    const refresh = this.#loadAsOwner(key, factory, options, lease)
    refresh.catch((error: unknown) => emit({ package: 'cache', event: 'refresh-failed', key, error }))
    return refresh
  }

  /** Redis could not run the read: serve a fresh value if a read-only look still works, else the factory's, uncached. */
  async #withoutLease<T>(
    key: string,
    factory: () => Promise<T> | T,
    options: GetOrSetOptions,
    error: unknown,
  ): Promise<T> {
    this.#failOpen('getOrSet', error)
    if (isOutOfMemoryError(error)) {
      // At maxmemory the lease cannot be written, but reads still work.
      const value = await this.#get<T>(key).catch(() => undefined)
      if (value !== undefined) return value
    }
    const { value } = await this.#runFactory(key, factory, options)
    // Uncached, but refused all the same if the codec would refuse it: every call answers alike.
    if (value !== undefined) this.#encode(key, value, false)
    return value
  }

  async #getOrSet<T>(key: string, factory: () => Promise<T> | T, options: GetOrSetOptions): Promise<T> {
    const o = this.#o
    const keys = [this.#keys.entry(key), this.#keys.tagsFor(key), this.#keys.lease(key)]
    const deadline =
      options.hardTimeoutMs === undefined
        ? Number.POSITIVE_INFINITY
        : performance.now() + options.hardTimeoutMs
    let force = false
    for (let round = 0; ; round++) {
      const lease = randomUUID()
      // An announcement that lands while this read runs must still end the wait that follows it.
      const startedAt = performance.now()
      const generation = this.#generation
      let raw: RawEntry | null
      let leased: boolean
      try {
        let corrupt: number
        ;[raw, leased, corrupt] = await this.#redis('getOrSet', () =>
          readOrLeaseScript.run(o.redis, keys, [lease, o.leaseMs, 1, force ? 1 : 0]),
        ).then(([r, l, c]) => [r || null, l === 1, c] as const)
        if (corrupt === 1) this.#corrupt(key)
      } catch (error) {
        return this.#withoutLease(key, factory, options, error)
      }
      const entry = raw ? this.#decode(key, raw) : null
      const value = (entry?.negative ? undefined : entry?.value) as T
      // Present but unreadable: like a miss, except that the next read must take the lease over it
      // (and overwrite it) even though it looks fresh.
      if (raw && !entry) force = true

      if (raw && entry && entry.freshMs > 0) {
        this.#stats.hits++
        this.#toL1(key, raw[0], raw[1], raw[2], tagNames(raw[4]), generation)
        if (
          options.earlyRefresh &&
          entry.factoryMs > 0 &&
          -entry.factoryMs * Math.log(Math.random()) >= entry.freshMs
        ) {
          void this.#earlyRefresh(key, factory, options)
        }
        return value
      }
      if (entry) {
        // Stale, within grace.
        this.#stats.staleHits++
        if (!leased) return value
        const refresh = this.#refreshInBackground(key, factory, options, lease)
        const soft = options.softTimeoutMs ?? 0
        if (soft === 0) return value
        return Promise.race([
          refresh.catch(() => value),
          new Promise<T>((r) => setTimeout(() => r(value), soft).unref()),
        ])
      }
      this.#stats.misses++
      if (leased) return this.#loadAsOwner(key, factory, options, lease)
      // Another process is loading: wait for its announcement (or the lease to lapse), then read again.
      const left = deadline - performance.now()
      if (left <= 0) throw hardTimeout(key, options.hardTimeoutMs ?? 0)
      await this.#notifier.listen(
        this.#keys.loadedChannel,
        Math.max(1, Math.min(Math.ceil(left), o.timeoutMs)),
      )
      if (round === 0) continue
      await this.#notifier.wait(this.#keys.loadedChannel, Math.min(left, 250), {
        message: key,
        since: startedAt,
      })
    }
  }

  async #earlyRefresh<T>(
    key: string,
    factory: () => Promise<T> | T,
    options: GetOrSetOptions,
  ): Promise<void> {
    const lease = randomUUID()
    try {
      const taken = await this.#redis('earlyRefresh', () =>
        this.#o.redis.set(this.#keys.lease(key), lease, 'PX', this.options.leaseMs, 'NX'),
      )
      if (taken === 'OK') await this.#refreshInBackground(key, factory, options, lease).catch(() => {})
    } catch (error) {
      this.#failOpen('earlyRefresh', error)
    }
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
      list.forEach((e, i) => {
        if (typeof e !== 'object' || e === null || Array.isArray(e))
          throw new InvalidArgumentError(`entries[${i}]`, 'must be an object { key, value, ...options }')
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
      const byShard = new Map<number, string[]>()
      list.forEach((key, i) => {
        requireNonEmptyString(`keys[${i}]`, key)
        const shard = this.#keys.shardOf(key)
        const group = byShard.get(shard) ?? []
        group.push(this.#keys.entry(key))
        byShard.set(shard, group)
      })
      this.#generation++
      for (const key of list) this.#l1?.delete(key)
      await instrument({ package: 'cache', operation: 'delete' }, () =>
        Promise.all(
          [...byShard.values()].map((group) => this.#redis('delete', () => this.#o.redis.unlink(...group))),
        ),
      )
    })
  }

  /** Every entry written with `tag` reads as a miss from now on: one command per shard. */
  invalidateTag(tag: string): Promise<void> {
    return promised(async () => {
      const name = escapeTag(requireNonEmptyString('tag', tag))
      const life = this.options.ttlMs + this.options.graceMs
      this.#dropTag(name)
      await instrument({ package: 'cache', operation: 'invalidateTag' }, () =>
        Promise.all(
          Array.from({ length: this.#keys.shards }, (_, shard) =>
            this.#redis('invalidateTag', () =>
              invalidateTagScript.run(this.#o.redis, [this.#keys.tags(shard)], [name, life]),
            ),
          ),
        ),
      )
      this.#dropTag(name)
    })
  }

  #dropTag(name: string): void {
    this.#generation++
    if (this.#l1)
      for (const [key, entry] of this.#l1.entries()) if (entry.tags.includes(name)) this.#l1.delete(key)
  }

  /**
   * Deletes entries whose key matches a glob (`profile:*`), by SCAN over every master and batched
   * UNLINK: only this cache's own entries, each Redis call bounded by timeoutMs.
   */
  deleteByPattern(glob: string): Promise<number> {
    return promised(() => {
      requireNonEmptyString('pattern', glob)
      // The SCAN pattern is a superset over escaped keys; the user's glob decides on the real key.
      const matches = globMatcher(glob)
      return this.#deleteMatching(this.#keys.entryPattern(glob), (k) => {
        const userKey = this.#keys.userKeyOf(k)
        return userKey !== null && matches(userKey)
      })
    })
  }

  /** Deletes every key this cache wrote (entries, leases, tag versions), and nothing else. */
  clear(): Promise<number> {
    return promised(() => this.#deleteMatching(this.#keys.allPattern(), (k) => this.#keys.owns(k)))
  }

  #deleteMatching(match: string, keep: (key: string) => boolean): Promise<number> {
    this.#generation++
    this.#l1?.clear()
    return deleteByPattern(this.#o.redis, {
      match,
      timeoutMs: this.options.timeoutMs,
      filter: (keys) => keys.filter(keep),
    })
  }

  stats(): Readonly<CacheStats> {
    return { ...this.#stats }
  }

  /** Closes the tracking and pub/sub connections this cache opened (not the client you passed); bounded. */
  async close(): Promise<void> {
    await Promise.all([this.#tracker?.close(), this.#notifier.close()])
  }
}
