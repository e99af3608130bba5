import { deleteByPattern, type RedisClient, RedisGuard } from '@rp/core/kit'
import type { CacheKeys } from './cache-keys.js'
import type { Encoded } from './codec.js'
import type { ResolvedSet } from './entry.js'
import {
  entryOf,
  invalidateTagScript,
  type RawEntry,
  readOrLeaseScript,
  readScript,
  releaseLeaseScript,
  type StoredEntry,
  writeScript,
} from './scripts.js'

/**
 * The only code of the cache that talks to Redis. Every call goes through core's call path:
 * bounded by timeoutMs, failing at once while the client reconnects, and behind a circuit breaker
 * that only connection failures and timeouts (never a data error) count towards.
 */
export class RemoteTier {
  readonly #redis: RedisClient
  readonly #guard: RedisGuard
  readonly #timeoutMs: number
  readonly #leaseMs: number
  readonly keys: CacheKeys

  constructor(
    redis: RedisClient,
    keys: CacheKeys,
    options: { timeoutMs: number; leaseMs: number; batch: boolean },
  ) {
    this.#redis = redis
    this.keys = keys
    this.#timeoutMs = options.timeoutMs
    this.#leaseMs = options.leaseMs
    this.#guard = new RedisGuard(redis, options.timeoutMs, { breaker: true, batch: options.batch })
  }

  #run<T>(operation: string, call: () => Promise<T>): Promise<T> {
    return this.#guard.run(`cache.${operation}`, call)
  }

  /**
   * The entry as stored (entryOf splits it), -1 for a corrupt key, or null on a miss. The script's
   * own promise, with no async frame of its own: this is a cache hit's hottest path.
   */
  read(key: string): Promise<StoredEntry | -1 | null> {
    return this.#guard.script('cache.get', readScript, [this.keys.entry(key), this.keys.tagsFor(key)])
  }

  /** The entry (or null), whether this caller now holds the loader lease, and whether the key was corrupt. */
  async readOrLease(
    key: string,
    lease: string,
    force: boolean,
  ): Promise<[RawEntry | null, boolean, boolean]> {
    const k = this.keys
    const [raw, leased, corrupt] = await this.#guard.script(
      'cache.getOrSet',
      readOrLeaseScript,
      [k.entry(key), k.tagsFor(key), k.lease(key)],
      [lease, this.#leaseMs, 1, force ? 1 : 0],
    )
    return [raw ? entryOf(raw) : null, leased === 1, corrupt === 1]
  }

  async write(
    key: string,
    encoded: Encoded,
    set: ResolvedSet,
    factoryMs: number,
    lease: string,
  ): Promise<void> {
    const k = this.keys
    await this.#guard.script(
      'cache.set',
      writeScript,
      [k.entry(key), k.tagsFor(key), k.lease(key)],
      [
        encoded.data,
        encoded.flags,
        set.ttlMs,
        set.graceMs,
        Math.round(factoryMs),
        lease,
        lease ? k.loadedChannel : '',
        key,
        ...set.tags,
      ],
    )
  }

  /** Frees the loader lease if still ours; never rejects (it lapses on its own anyway). */
  async releaseLease(key: string, lease: string): Promise<void> {
    if (!lease) return
    await this.#guard
      .script('cache.releaseLease', releaseLeaseScript, [this.keys.lease(key)], [lease])
      .catch(() => {})
  }

  /** Takes the loader lease if nobody holds it (an early refresh). */
  async takeLease(key: string, lease: string): Promise<boolean> {
    return (
      (await this.#run('earlyRefresh', () =>
        this.#redis.set(this.keys.lease(key), lease, 'PX', this.#leaseMs, 'NX'),
      )) === 'OK'
    )
  }

  /** Removes entries, one UNLINK per shard. */
  async delete(keys: readonly string[]): Promise<void> {
    const byShard = new Map<number, string[]>()
    for (const key of keys) {
      const shard = this.keys.shardOf(key)
      const group = byShard.get(shard) ?? []
      group.push(this.keys.entry(key))
      byShard.set(shard, group)
    }
    await Promise.all(
      [...byShard.values()].map((group) => this.#run('delete', () => this.#redis.unlink(...group))),
    )
  }

  /** Bumps the tag's version in every shard: one command each. */
  async invalidateTag(name: string, lifeMs: number): Promise<void> {
    await Promise.all(
      Array.from({ length: this.keys.shards }, (_, shard) =>
        this.#guard.script(
          'cache.invalidateTag',
          invalidateTagScript,
          [this.keys.tags(shard)],
          [name, lifeMs],
        ),
      ),
    )
  }

  /** SCAN on every master with `match`, UNLINK what `keep` accepts; every call bounded. */
  deleteMatching(match: string, keep: (key: string) => boolean): Promise<number> {
    return deleteByPattern(this.#redis, {
      match,
      timeoutMs: this.#timeoutMs,
      filter: (keys) => keys.filter(keep),
    })
  }
}
