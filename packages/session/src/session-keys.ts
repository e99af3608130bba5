import * as crypto from 'node:crypto'

// crypto.hash (Node >= 20.12) hashes in one call, without a Hash object: a third of the cost.
const sha256: (id: string) => string =
  typeof crypto.hash === 'function'
    ? (id) => crypto.hash('sha256', id, 'base64url')
    : (id) => crypto.createHash('sha256').update(id).digest('base64url')

import { type Keyspace, keyspace, unescapeKeyPart } from '@rp/core/kit'

/**
 * Where a session lives. The id itself is never written to Redis: the key holds its SHA-256
 * (`handle`), so a leaked key list, a MONITOR log or a replica dump cannot be replayed as cookies.
 * Each session has its own slot (its handle is its hash tag); a user's index is a key of its own,
 * tagged by the user id.
 *
 * - `<prefix>:{<handle>}:s`: hash, the session (or its tombstone after destroy)
 * - `<prefix>:{<userId>}:u`: sorted set, the user's session handles by absolute expiry
 */
export class SessionKeys {
  readonly #keys: Keyspace

  constructor(prefix: string) {
    this.#keys = keyspace(prefix)
  }

  /** The SHA-256 of an id, base64url: what Redis sees instead of the id. */
  static handle(id: string): string {
    return sha256(id)
  }

  session(handle: string): string {
    return this.#keys.key(handle, 's')
  }

  user(userId: string): string {
    return this.#keys.key(userId, 'u')
  }

  /** Matches every session key of this store and nothing else (users' indexes end in `:u`). */
  sessionPattern(): string {
    return this.#keys.pattern('*', ':s')
  }

  /** Matches every user index of this store (and session keys never end in `:u`). */
  userPattern(): string {
    return this.#keys.pattern('*', ':u')
  }

  /** Whether a key that userPattern() matched is exactly a user index this store builds. */
  isUser(key: string): boolean {
    const tag = this.#keys.tagOf(key)
    if (tag === null) return false
    const userId = unescapeKeyPart(tag)
    return userId !== null && key === this.user(userId)
  }

  /** The handle of a key that sessionPattern() matched, or null for a key this store did not write. */
  handleOf(key: string): string | null {
    const tag = this.#keys.tagOf(key)
    return tag !== null && /^[A-Za-z0-9_-]{43}$/.test(tag) && key === this.session(tag) ? tag : null
  }
}
