import type { Encoded } from './codec.js'
import { type Entries, type ResolvedSet, tagNames } from './entry.js'
import { type LocalTier, MISS } from './local-tier.js'
import type { RemoteTier } from './remote-tier.js'
import { entryOf, type RawEntry } from './scripts.js'

/** The read and write paths through both tiers, shared by the Cache facade and the loader. */
export class Tiers {
  constructor(
    readonly remote: RemoteTier,
    readonly local: LocalTier,
    readonly entries: Entries,
  ) {}

  /** L1, else Redis (filling L1); undefined on a miss, past ttlMs, or when Redis cannot answer. */
  async read<T>(key: string): Promise<T | undefined> {
    const stats = this.entries.stats
    const local = this.local.get(key)
    if (local !== MISS) {
      stats.l1Hits++
      return local as T | undefined
    }
    const generation = this.local.generation
    let raw: RawEntry | -1 | null
    try {
      const stored = await this.remote.read(key)
      raw = stored === null || stored === -1 ? stored : entryOf(stored)
    } catch (error) {
      this.entries.failOpen('get', error)
      stats.misses++
      return undefined
    }
    if (raw === -1) this.entries.corrupt(key)
    const entry = raw && raw !== -1 ? this.entries.decode(key, raw) : null
    if (!raw || raw === -1 || !entry || entry.freshMs <= 0) {
      stats.misses++
      return undefined
    }
    stats.hits++
    this.local.set(key, raw[0], raw[1], raw[2], tagNames(raw[4]), generation)
    return (entry.negative ? undefined : entry.value) as T | undefined
  }

  /** Writes to Redis, then to L1 unless an invalidation raced the write. */
  async write(
    key: string,
    encoded: Encoded,
    set: ResolvedSet,
    factoryMs: number,
    lease: string,
  ): Promise<void> {
    const generation = this.local.invalidate([key])
    await this.remote.write(key, encoded, set, factoryMs, lease)
    this.local.set(key, encoded.data, encoded.flags, set.ttlMs, set.tags, generation)
  }
}
