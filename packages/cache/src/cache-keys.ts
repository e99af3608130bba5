import {
  escapeGlob,
  escapeGlobPart,
  escapeKeyPart,
  type Keyspace,
  keyspace,
  unescapeKeyPart,
} from '@rp/core/kit'

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

  readonly #ownTag: RegExp

  constructor(namespace: string, shards: number) {
    this.#ks = keyspace(namespace, 'namespace')
    this.#namespace = namespace
    this.shards = shards
    const tag = escapeKeyPart(namespace).replace(/[.*+?^${}()|[\]\\]/g, '\\$&')
    // The tags this cache writes: the namespace, or namespace#shard with any shard count a deploy
    // may have used before.
    this.#ownTag = new RegExp(`^${tag}(?:#(?:0|[1-9][0-9]{0,8}))?$`)
  }

  #tag(shard: number): string {
    return this.shards === 1 ? this.#namespace : `${this.#namespace}#${shard}`
  }

  /*
   * A shard's `namespace:{tag}` and its tags key, built once: every read builds an entry key and
   * names its shard's tags key, and escaping the namespace again each time showed on the profile.
   */
  readonly #heads: string[] = []
  readonly #tagsKeys: string[] = []

  #head(shard: number): string {
    let head = this.#heads[shard]
    if (head === undefined) {
      head = this.#ks.key(this.#tag(shard))
      this.#heads[shard] = head
    }
    return head
  }

  shardOf(key: string): number {
    return this.shards === 1 ? 0 : fnv1a(key) % this.shards
  }

  /** `#ks.key(tag, 'v', key)`, from the shard's head. */
  entry(key: string): string {
    return `${this.#head(this.shardOf(key))}:v:${escapeKeyPart(key)}`
  }

  tags(shard: number): string {
    let tags = this.#tagsKeys[shard]
    if (tags === undefined) {
      tags = `${this.#head(shard)}:tags`
      this.#tagsKeys[shard] = tags
    }
    return tags
  }

  tagsFor(key: string): string {
    return this.tags(this.shardOf(key))
  }

  lease(key: string): string {
    return `${this.#head(this.shardOf(key))}:lease:${escapeKeyPart(key)}`
  }

  /** Channel on which a loader announces a freshly written key (the message is the user key). */
  get loadedChannel(): string {
    return this.#ks.channel(this.#tag(0), 'loaded')
  }

  /** Prefix shared by every key of the namespace, for BCAST tracking. */
  get trackingPrefix(): string {
    return `${this.#namespace}:{`
  }

  /**
   * The user key back from an entry key, or null for any key this cache did not write, including
   * a malformed one another client planted (never throws: it runs inside an event listener).
   */
  userKeyOf(entryKey: string): string | null {
    const tag = this.#ks.tagOf(entryKey)
    if (tag === null || !this.#ownTag.test(tag)) return null
    const rest = entryKey.slice(this.trackingPrefix.length + tag.length + 1)
    return rest.startsWith(':v:') ? unescapeKeyPart(rest.slice(3)) : null
  }

  isTagsKey(key: string): boolean {
    const tag = this.#ks.tagOf(key)
    return (
      tag !== null &&
      this.#ownTag.test(tag) &&
      key.length === this.trackingPrefix.length + tag.length + 6 &&
      key.endsWith('}:tags')
    )
  }

  /** Whether this cache wrote `key`: an entry, a lease or a tags hash of one of its shards. */
  owns(key: string): boolean {
    const tag = this.#ks.tagOf(key)
    if (tag === null || !this.#ownTag.test(tag)) return false
    const rest = key.slice(this.trackingPrefix.length + tag.length + 1)
    if (rest === ':tags') return true
    const part = rest.startsWith(':v:') ? rest.slice(3) : rest.startsWith(':lease:') ? rest.slice(7) : null
    return part !== null && unescapeKeyPart(part) !== null
  }

  #tagGlob(): string {
    const tag = escapeGlob(escapeKeyPart(this.#namespace))
    return this.shards === 1 ? tag : `${tag}#*`
  }

  /**
   * SCAN pattern for entries whose user key matches `glob` (* ? [ ] keep their meaning); filter
   * the matches with owns(), since a shard glob is wider than the shards themselves.
   */
  entryPattern(glob: string): string {
    return this.#ks.pattern(this.#tagGlob(), `:v:${escapeGlobPart(glob)}`)
  }

  /** SCAN pattern for every key of this cache, to be filtered with owns(). */
  allPattern(): string {
    return this.#ks.pattern(`${escapeGlob(escapeKeyPart(this.#namespace))}*`, ':*')
  }
}
