import { escapeGlob, escapeKeyPart, type Keyspace, keyspace } from '@rp/core'

// FNV-1a: a cheap, stable spread of user keys over shards.
function fnv1a(text: string): number {
  let hash = 0x811c9dc5
  for (let i = 0; i < text.length; i++) {
    hash ^= text.charCodeAt(i)
    hash = Math.imul(hash, 0x01000193)
  }
  return hash >>> 0
}

/**
 * Key layout of one namespace. Every key of a shard shares the hash tag `{namespace#shard}`, so an
 * entry, the shard's tag-version hash and the entry's loader lease sit in one slot and one script
 * can touch them all. With one shard (the default) a namespace lives in one cluster slot.
 */
export class CacheKeys {
  readonly #ks: Keyspace
  readonly #namespace: string
  readonly shards: number

  constructor(namespace: string, shards: number) {
    this.#ks = keyspace(namespace)
    this.#namespace = namespace
    this.shards = shards
  }

  #tag(shard: number): string {
    return this.shards === 1 ? this.#namespace : `${this.#namespace}#${shard}`
  }

  shardOf(key: string): number {
    return this.shards === 1 ? 0 : fnv1a(key) % this.shards
  }

  entry(key: string): string {
    return this.#ks.key(this.#tag(this.shardOf(key)), 'v', key)
  }

  tags(shard: number): string {
    return this.#ks.key(this.#tag(shard), 'tags')
  }

  tagsFor(key: string): string {
    return this.tags(this.shardOf(key))
  }

  lease(key: string): string {
    return this.#ks.key(this.#tag(this.shardOf(key)), 'lease', key)
  }

  /** Channel on which a loader announces a freshly written key (the message is the user key). */
  get loadedChannel(): string {
    return `${this.#ks.key(this.#tag(0))}:loaded`
  }

  /** Prefix shared by every key of the namespace, for BCAST tracking. */
  get trackingPrefix(): string {
    return `${this.#namespace}:{`
  }

  /** The user key back from an entry key, or null for the namespace's other keys. */
  userKeyOf(entryKey: string): string | null {
    const marker = entryKey.indexOf('}:v:')
    if (marker < 0 || !entryKey.startsWith(this.trackingPrefix)) return null
    return decodeURIComponent(entryKey.slice(marker + 4))
  }

  isTagsKey(key: string): boolean {
    return key.startsWith(this.trackingPrefix) && key.endsWith('}:tags')
  }

  /** SCAN pattern for entries whose user key matches `glob` (* ? [ ] keep their meaning). */
  entryPattern(glob: string): string {
    const userPart = glob.replace(/[^*?[\]]+/g, (literal) => escapeGlob(escapeKeyPart(literal)))
    const tag =
      this.shards === 1
        ? escapeGlob(escapeKeyPart(this.#namespace))
        : `${escapeGlob(escapeKeyPart(`${this.#namespace}#`))}*`
    return `${escapeGlob(this.#namespace)}:{${tag}}:v:${userPart}`
  }

  /** SCAN pattern for every key of the namespace. */
  allPattern(): string {
    return this.#ks.pattern()
  }
}
