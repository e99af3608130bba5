import { escapeKeyPart } from '@rp/core/kit'
import { type Codec, decodeEntry, type Encoded, encodeEntry } from './codec.js'
import { emit } from './events.js'
import type { RawEntry } from './scripts.js'

export interface SetOptions {
  ttlMs?: number
  graceMs?: number
  /** At most 100 non-empty strings; any characters. */
  tags?: readonly string[]
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

/** SetOptions resolved against the cache's defaults. */
export interface ResolvedSet {
  ttlMs: number
  graceMs: number
  /** Escaped: injective, and free of the newline the entry's tag list uses as separator. */
  tags: string[]
}

/** A decoded entry as a read found it. */
export interface Entry {
  value: unknown
  negative: boolean
  /** ms until stale at read time (negative: stale, within grace). */
  freshMs: number
  factoryMs: number
}

/** Escapes a tag injectively: core's key escaping, plus the newline (which it leaves alone). */
export function escapeTag(tag: string): string {
  return escapeKeyPart(tag).replace(/\n/g, '%0A')
}

/** The tag names of an entry's stored tag list (`tag\nversion\n`…). */
export function tagNames(field: string): string[] {
  if (!field) return []
  const parts = field.split('\n')
  const names: string[] = []
  for (let i = 0; i + 1 < parts.length; i += 2) names.push(parts[i]!)
  return names
}

export function newStats(): CacheStats {
  return {
    hits: 0,
    misses: 0,
    staleHits: 0,
    l1Hits: 0,
    refreshes: 0,
    factoryCalls: 0,
    errors: 0,
    decodeErrors: 0,
  }
}

/** Encoding, decoding and the accounting of what could not be read, shared by both tiers and the loader. */
export class Entries {
  constructor(
    private readonly codec: Codec,
    private readonly compressAboveBytes: number | null,
    readonly stats: CacheStats,
  ) {}

  /** Throws InvalidArgumentError for a value the codec refuses. */
  encode(key: string, value: unknown, negative: boolean): Encoded {
    return encodeEntry(this.codec, key, value, negative, this.compressAboveBytes)
  }

  /** The entry, or null (reported as a decode error) when its data cannot be read. */
  decode(key: string, raw: RawEntry): Entry | null {
    try {
      const d = decodeEntry(this.codec, raw[0], raw[1])
      return { value: d.value, negative: d.negative, freshMs: raw[2], factoryMs: raw[3] }
    } catch (error) {
      this.corrupt(key, error)
      return null
    }
  }

  corrupt(key: string, error?: unknown): void {
    this.stats.decodeErrors++
    emit({ package: 'cache', event: 'decode-error', key, error })
  }

  failOpen(operation: string, error: unknown): void {
    this.stats.errors++
    emit({ package: 'cache', event: 'redis-error', operation, error })
  }
}
