import type { RedisClient } from '@rp/core/kit'
import { LRUCache } from 'lru-cache'
import type { CacheKeys } from './cache-keys.js'
import { type Codec, decodeEntry } from './codec.js'
import { emit } from './events.js'
import { Tracker } from './tracking.js'

/** L1 keeps the encoded form: every hit decodes a fresh copy, so no caller can mutate another's value. */
interface L1Entry {
  data: string
  flags: string
  freshUntil: number
  /** Escaped tag names, as stored in Redis. */
  tags: readonly string[]
}

/** What a local read found: the value (a fresh copy; undefined for a cached "not found") or nothing. */
export const MISS = Symbol('miss')

/**
 * The in-process tier: a bounded LRU of encoded entries, kept fresh by Redis client-side caching
 * when tracking is on (and bypassed while tracking is not armed). A generation counter, bumped by
 * every invalidation this process sees, keeps a read that raced one from filling L1.
 */
export class LocalTier {
  readonly #l1: LRUCache<string, L1Entry> | null
  readonly #ttlMs: number
  readonly #codec: Codec
  readonly #keys: CacheKeys
  readonly #tracker: Tracker | null
  #trackerStarted: Promise<void> | null = null
  #generation = 0

  constructor(
    redis: RedisClient,
    keys: CacheKeys,
    codec: Codec,
    options: { l1: { maxEntries: number; ttlMs: number } | null; tracking: boolean },
  ) {
    this.#keys = keys
    this.#codec = codec
    this.#ttlMs = options.l1?.ttlMs ?? 0
    this.#l1 = options.l1 ? new LRUCache({ max: options.l1.maxEntries, ttl: options.l1.ttlMs }) : null
    this.#tracker = options.tracking
      ? new Tracker(redis, keys.trackingPrefix, (changed) => this.#onInvalidate(changed))
      : null
  }

  /** Resolves once tracking is armed (a no-op without tracking). Never rejects. */
  ready(): Promise<void> {
    if (!this.#tracker) return Promise.resolve()
    // Without tracking the cache still works; it just keeps L1 out of the way.
    this.#trackerStarted ??= this.#tracker.start().catch((error: unknown) => {
      this.#trackerStarted = null
      emit({ package: 'cache', event: 'tracking-failed', error })
    })
    return this.#trackerStarted
  }

  /** The current generation: pass it back to set() when the read it started has an answer. */
  get generation(): number {
    return this.#generation
  }

  #onInvalidate(changed: string[] | null): void {
    this.#generation++
    if (!this.#l1) return
    if (changed === null) {
      this.#l1.clear()
      return
    }
    for (const key of changed) {
      if (this.#keys.isTagsKey(key)) {
        this.#l1.clear()
        return
      }
      const userKey = this.#keys.userKeyOf(key)
      if (userKey !== null) this.#l1.delete(userKey)
    }
  }

  #usable(): boolean {
    if (!this.#l1) return false
    if (!this.#tracker) return true
    void this.ready()
    return this.#tracker.active
  }

  get(key: string): unknown {
    if (!this.#usable()) return MISS
    const entry = this.#l1!.get(key)
    if (!entry || entry.freshUntil <= Date.now()) return MISS
    try {
      const decoded = decodeEntry(this.#codec, entry.data, entry.flags)
      return decoded.negative ? undefined : decoded.value
    } catch {
      this.#l1!.delete(key)
      return MISS
    }
  }

  /** Fills L1, unless an invalidation happened since `generation` was read. */
  set(
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
      { ttl: Math.min(this.#ttlMs, freshMs) },
    )
  }

  /** This process changes `keys`: drop them, and stop reads in flight from filling L1. Returns the new generation. */
  invalidate(keys: readonly string[]): number {
    this.#generation++
    for (const key of keys) this.#l1?.delete(key)
    return this.#generation
  }

  dropTag(name: string): void {
    this.#generation++
    if (this.#l1)
      for (const [key, entry] of this.#l1.entries()) if (entry.tags.includes(name)) this.#l1.delete(key)
  }

  clear(): void {
    this.#generation++
    this.#l1?.clear()
  }

  close(): Promise<void> {
    return this.#tracker?.close() ?? Promise.resolve()
  }
}
