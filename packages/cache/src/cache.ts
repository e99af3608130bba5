import { randomUUID } from 'node:crypto'
import {
  deleteByPattern,
  InvalidArgumentError,
  instrument,
  Notifier,
  publishEvent,
  RedisGuard,
  RedisUnavailableError,
  requireNonEmptyString,
  requireNonNegativeInteger,
  requirePositiveInteger,
  TimeoutError,
  withTimeout,
} from '@rp/core'
import { LRUCache } from 'lru-cache'
import { CacheKeys } from './cache-keys.js'
import { CircuitBreaker } from './circuit-breaker.js'
import { decodeEntry, encodeEntry } from './codec.js'
import { type CacheOptions, type ResolvedCacheOptions, resolveCacheOptions } from './options.js'
import {
  invalidateTagScript,
  readOrLeaseScript,
  readScript,
  releaseLeaseScript,
  writeScript,
} from './scripts.js'
import { Tracker } from './tracking.js'

export interface SetOptions {
  ttlMs?: number
  graceMs?: number
  tags?: readonly string[]
}

export interface GetOrSetOptions extends SetOptions {
  /** Soft factory timeout: with a stale value at hand, return it after this long and let the refresh finish. */
  timeoutMs?: number
  /** Hard factory timeout: reject with TimeoutError after this long. */
  hardTimeoutMs?: number
  /** Cache "not found" (a factory returning undefined) for this long. */
  negativeTtlMs?: number
  /** Refresh early, with a probability that rises as expiry nears, weighted by the factory's cost (XFetch). */
  earlyRefresh?: boolean
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

interface Entry {
  value: unknown
  negative: boolean
  /** ms until stale at read time (negative: stale, within grace). */
  freshMs: number
  factoryMs: number
}

interface L1Entry {
  value: unknown
  negative: boolean
  freshUntil: number
  tags: readonly string[]
}

type RawEntry = [string, string, number, number]

/**
 * A two-tier cache: an optional in-process LRU (kept fresh by Redis client-side caching) in front of
 * Redis. A Redis hit is one script, tag check included; an L1 hit is no round trip.
 */
export class Cache {
  readonly options: Readonly<ResolvedCacheOptions>
  readonly #keys: CacheKeys
  readonly #l1: LRUCache<string, L1Entry> | null
  readonly #inflight = new Map<string, Promise<unknown>>()
  readonly #breaker = new CircuitBreaker()
  readonly #guard: RedisGuard
  readonly #notifier: Notifier
  readonly #tracker: Tracker | null
  #trackerStarted: Promise<void> | null = null
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
    this.options = Object.freeze(resolveCacheOptions(options))
    const o = this.options
    this.#keys = new CacheKeys(o.namespace, o.shards)
    this.#guard = new RedisGuard(o.redis, o.timeoutMs)
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
      publishEvent({ package: 'cache', event: 'tracking-failed', error })
    })
    return this.#trackerStarted
  }

  #onInvalidate(keys: string[] | null): void {
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

  #fromL1(key: string): L1Entry | undefined {
    if (!this.#l1Usable()) return undefined
    const entry = this.#l1!.get(key)
    if (entry && entry.freshUntil > Date.now()) return entry
    return undefined
  }

  #toL1(key: string, entry: Entry, tags: readonly string[]): void {
    if (!this.#l1 || entry.freshMs <= 0) return
    this.#l1.set(
      key,
      { value: entry.value, negative: entry.negative, freshUntil: Date.now() + entry.freshMs, tags },
      {
        ttl: Math.min(this.options.l1!.ttlMs, entry.freshMs),
      },
    )
  }

  /**
   * Runs a Redis call through the circuit breaker and core's guard: bounded by timeoutMs, and
   * failing at once instead of joining the offline queue while the client reconnects.
   */
  async #redis<T>(operation: string, call: () => Promise<T>): Promise<T> {
    if (!this.#breaker.allow())
      throw new RedisUnavailableError(
        'cache circuit is open: Redis failed repeatedly, so it is skipped for a while',
      )
    try {
      const result = await this.#guard.run(`cache.${operation}`, call)
      this.#breaker.success()
      return result
    } catch (error) {
      this.#breaker.failure()
      throw error
    }
  }

  #decode(key: string, raw: RawEntry | null | false): Entry | null {
    if (!raw) return null
    try {
      const d = decodeEntry(this.options.codec, raw[0], raw[1])
      return { value: d.value, negative: d.negative, freshMs: raw[2], factoryMs: raw[3] }
    } catch (error) {
      this.#stats.decodeErrors++
      publishEvent({ package: 'cache', event: 'decode-error', key, error })
      return null
    }
  }

  #failOpen(operation: string, error: unknown): void {
    this.#stats.errors++
    publishEvent({ package: 'cache', event: 'redis-error', operation, error })
  }

  /** The value while fresh; undefined on a miss, past ttlMs, or when Redis cannot answer in time. A stored null is null. */
  get<T = unknown>(key: string): Promise<T | undefined> {
    requireNonEmptyString('key', key)
    return instrument({ package: 'cache', operation: 'get' }, async () => {
      const local = this.#fromL1(key)
      if (local) {
        this.#stats.l1Hits++
        return (local.negative ? undefined : local.value) as T | undefined
      }
      let entry: Entry | null
      try {
        entry = this.#decode(
          key,
          await this.#redis('get', () =>
            readScript.run(this.options.redis, [this.#keys.entry(key), this.#keys.tagsFor(key)]),
          ),
        )
      } catch (error) {
        this.#failOpen('get', error)
        this.#stats.misses++
        return undefined
      }
      if (!entry || entry.freshMs <= 0) {
        this.#stats.misses++
        return undefined
      }
      this.#stats.hits++
      this.#toL1(key, entry, [])
      return (entry.negative ? undefined : entry.value) as T | undefined
    })
  }

  async #write(
    key: string,
    value: unknown,
    negative: boolean,
    options: SetOptions,
    factoryMs: number,
    lease: string,
  ): Promise<void> {
    const o = this.options
    const ttlMs = requirePositiveInteger('ttlMs', options.ttlMs ?? o.ttlMs)
    const graceMs = requireNonNegativeInteger('graceMs', options.graceMs ?? o.graceMs)
    const tags = (options.tags ?? []).map((t) => requireNonEmptyString('tags[]', t))
    const encoded = encodeEntry(o.codec, key, value, negative, o.compressAboveBytes)
    await this.#redis('set', () =>
      writeScript.run(
        o.redis,
        [this.#keys.entry(key), this.#keys.tagsFor(key), this.#keys.lease(key)],
        [
          encoded.data,
          encoded.flags,
          ttlMs,
          graceMs,
          Math.round(factoryMs),
          lease,
          lease ? this.#keys.loadedChannel : '',
          key,
          ...tags,
        ],
      ),
    )
    this.#l1?.delete(key)
    this.#toL1(key, { value, negative, freshMs: ttlMs, factoryMs }, tags)
  }

  /** Stores a value (anything the codec encodes; not undefined). Rejects if Redis cannot take it. */
  set(key: string, value: unknown, options: SetOptions = {}): Promise<void> {
    requireNonEmptyString('key', key)
    if (value === undefined)
      throw new InvalidArgumentError(
        'value',
        `is undefined for key ${JSON.stringify(key)}; delete the key instead`,
      )
    return instrument({ package: 'cache', operation: 'set' }, () =>
      this.#write(key, value, false, options, 0, ''),
    )
  }

  /**
   * The cached value, or the factory's. Concurrent calls share one factory call per process, and a
   * lease in Redis elects one loader across processes; the others wait for its value (woken by
   * pub/sub) or serve a stale value within grace.
   */
  getOrSet<T>(key: string, factory: () => Promise<T> | T, options: GetOrSetOptions = {}): Promise<T> {
    requireNonEmptyString('key', key)
    if (typeof factory !== 'function')
      throw new InvalidArgumentError('factory', 'must be a function returning the value')
    if (options.hardTimeoutMs !== undefined) requirePositiveInteger('hardTimeoutMs', options.hardTimeoutMs)
    if (options.timeoutMs !== undefined) requireNonNegativeInteger('timeoutMs', options.timeoutMs)
    if (options.negativeTtlMs !== undefined) requirePositiveInteger('negativeTtlMs', options.negativeTtlMs)
    const local = this.#fromL1(key)
    if (local) {
      this.#stats.l1Hits++
      return Promise.resolve((local.negative ? undefined : local.value) as T)
    }
    const pending = this.#inflight.get(key)
    if (pending) return pending as Promise<T>
    const load = instrument({ package: 'cache', operation: 'getOrSet' }, () =>
      this.#getOrSet(key, factory, options),
    ).finally(() => this.#inflight.delete(key))
    this.#inflight.set(key, load)
    return load
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

  async #store<T>(key: string, value: T, ms: number, options: GetOrSetOptions, lease: string): Promise<void> {
    const negative = value === undefined
    if (negative && options.negativeTtlMs === undefined) {
      if (lease) await this.#releaseLease(key, lease)
      return
    }
    const writeOptions = negative ? { ...options, ttlMs: options.negativeTtlMs, graceMs: 0 } : options
    await this.#write(key, value, negative, writeOptions, ms, lease).catch((error: unknown) =>
      this.#failOpen('getOrSet.write', error),
    )
  }

  async #releaseLease(key: string, lease: string): Promise<void> {
    await this.#redis('releaseLease', () =>
      releaseLeaseScript.run(this.options.redis, [this.#keys.lease(key)], [lease]),
    ).catch(() => {})
  }

  /** Computes and stores the value as the lease holder; on failure frees the lease for others. */
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
    refresh.catch((error: unknown) => publishEvent({ package: 'cache', event: 'refresh-failed', key, error }))
    return refresh
  }

  async #getOrSet<T>(key: string, factory: () => Promise<T> | T, options: GetOrSetOptions): Promise<T> {
    const o = this.options
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
      let raw: RawEntry | false | null
      let leased: boolean
      try {
        ;[raw, leased] = await this.#redis('getOrSet', () =>
          readOrLeaseScript.run(o.redis, keys, [lease, o.leaseMs, 1, force ? 1 : 0]),
        ).then(([r, l]) => [r, l === 1] as const)
      } catch (error) {
        // Redis is down or slow: fail open to the factory, uncached.
        this.#failOpen('getOrSet', error)
        return (await this.#runFactory(key, factory, options)).value
      }
      const entry = this.#decode(key, raw)
      const value = (entry?.negative ? undefined : entry?.value) as T
      if (raw && !entry && !leased) {
        // Present but unreadable: take the lease over it on the next round and overwrite it.
        force = true
        continue
      }

      if (entry && entry.freshMs > 0) {
        this.#stats.hits++
        this.#toL1(key, entry, options.tags ?? [])
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
        const soft = options.timeoutMs ?? 0
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
      if (left <= 0)
        throw new TimeoutError(`cache getOrSet for ${JSON.stringify(key)}`, options.hardTimeoutMs ?? 0)
      await this.#notifier.listen(this.#keys.loadedChannel)
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
        this.options.redis.set(this.#keys.lease(key), lease, 'PX', this.options.leaseMs, 'NX'),
      )
      if (taken === 'OK') await this.#refreshInBackground(key, factory, options, lease).catch(() => {})
    } catch (error) {
      this.#failOpen('earlyRefresh', error)
    }
  }

  /** Values in key order; each is undefined on a miss. */
  getMany<T = unknown>(keys: readonly string[]): Promise<Array<T | undefined>> {
    return Promise.all(keys.map((k) => this.get<T>(k)))
  }

  async setMany(entries: ReadonlyArray<{ key: string; value: unknown } & SetOptions>): Promise<void> {
    await Promise.all(entries.map(({ key, value, ...options }) => this.set(key, value, options)))
  }

  async delete(key: string): Promise<void> {
    await this.deleteMany([key])
  }

  /** Removes keys, one UNLINK per shard. */
  async deleteMany(keys: readonly string[]): Promise<void> {
    const byShard = new Map<number, string[]>()
    for (const key of keys) {
      requireNonEmptyString('key', key)
      this.#l1?.delete(key)
      const shard = this.#keys.shardOf(key)
      const list = byShard.get(shard) ?? []
      list.push(this.#keys.entry(key))
      byShard.set(shard, list)
    }
    await Promise.all(
      [...byShard.values()].map((list) => this.#redis('delete', () => this.options.redis.unlink(...list))),
    )
  }

  /** Every entry written with `tag` reads as a miss from now on: one command per shard. */
  async invalidateTag(tag: string): Promise<void> {
    requireNonEmptyString('tag', tag)
    const life = this.options.ttlMs + this.options.graceMs
    await Promise.all(
      Array.from({ length: this.#keys.shards }, (_, shard) =>
        this.#redis('invalidateTag', () =>
          invalidateTagScript.run(this.options.redis, [this.#keys.tags(shard)], [tag, life]),
        ),
      ),
    )
    if (this.#l1)
      for (const [key, entry] of this.#l1.entries()) if (entry.tags.includes(tag)) this.#l1.delete(key)
  }

  /** Deletes entries whose key matches a glob (`profile:*`), by SCAN over every master and batched UNLINK. */
  async deleteByPattern(glob: string): Promise<number> {
    requireNonEmptyString('pattern', glob)
    this.#l1?.clear()
    return deleteByPattern(this.options.redis, { match: this.#keys.entryPattern(glob) })
  }

  /** Deletes every key of the namespace. */
  async clear(): Promise<number> {
    this.#l1?.clear()
    return deleteByPattern(this.options.redis, { match: this.#keys.allPattern() })
  }

  stats(): Readonly<CacheStats> {
    return { ...this.#stats }
  }

  /** Closes the tracking and pub/sub connections this cache opened (not the client you passed). */
  async close(): Promise<void> {
    await Promise.all([this.#tracker?.close(), this.#notifier.close()])
  }
}
