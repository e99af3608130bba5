import { InvalidArgumentError } from './errors.js'

// Characters that give a key structure: ':' separates parts, '{' '}' delimit the hash tag,
// '*' '?' '[' ']' '\' are glob syntax in SCAN MATCH, and '%' is our own escape character.
const SPECIAL = /[%:{}*?[\]\\]/g
const HAS_SPECIAL = /[%:{}*?[\]\\]/

/**
 * Percent-encodes the characters that carry meaning in a key or a SCAN pattern. The mapping is
 * injective, so two different inputs never produce the same key, and an escaped part can neither
 * leave its namespace, open a hash tag, nor act as a wildcard.
 */
export function escapeKeyPart(part: string): string {
  // Most keys need no escaping; skipping replace() keeps key building off the profile.
  if (!HAS_SPECIAL.test(part)) return part
  return part.replace(SPECIAL, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase().padStart(2, '0')}`)
}

/** Escapes a literal for use inside a SCAN MATCH pattern (glob), keeping everything else literal. */
export function escapeGlob(literal: string): string {
  return literal.replace(/[*?[\]\\]/g, (c) => `\\${c}`)
}

export interface Keyspace {
  /** The namespace, e.g. `rl` or `cache:users`. */
  readonly namespace: string
  /**
   * `namespace:{tag}:part:part`. Every key with the same tag lands in the same cluster slot, so a
   * script may touch all of them. Tag and parts are escaped.
   */
  key(tag: string, ...parts: Array<string | number>): string
  /** A key with the hash tag on the namespace itself, for keys one script touches across many ids. */
  shared(...parts: Array<string | number>): string
  /** SCAN pattern matching every key of this namespace. */
  pattern(): string
  /**
   * SCAN pattern for keys whose tag matches `tagGlob`. The glob characters * ? [ ] keep their
   * meaning; every other character is escaped exactly as key() escapes it.
   */
  tagPattern(tagGlob: string): string
}

/** Namespaced, cluster-safe key builder: every @rp package builds its keys with it. */
export function keyspace(namespace: string): Keyspace {
  if (typeof namespace !== 'string' || namespace.length === 0) {
    throw new InvalidArgumentError('prefix', 'must be a non-empty string')
  }
  if (/[{}*?[\]\\]/.test(namespace)) {
    throw new InvalidArgumentError(
      'prefix',
      `must not contain { } * ? [ ] or \\, got ${JSON.stringify(namespace)}`,
    )
  }
  const suffix = (parts: Array<string | number>) => parts.map((p) => `:${escapeKeyPart(String(p))}`).join('')
  return {
    namespace,
    key(tag, ...parts) {
      if (typeof tag !== 'string' || tag.length === 0)
        throw new InvalidArgumentError('key', 'must be a non-empty string')
      return `${namespace}:{${escapeKeyPart(tag)}}${suffix(parts)}`
    },
    shared(...parts) {
      // The tag holds a ':', which an escaped user tag never does, so it cannot collide with key().
      return `${namespace}:{${namespace}:}${suffix(parts)}`
    },
    pattern() {
      return `${escapeGlob(namespace)}:*`
    },
    tagPattern(tagGlob) {
      const escaped = tagGlob.replace(/[^*?[\]]+/g, (literal) => escapeGlob(escapeKeyPart(literal)))
      return `${escapeGlob(namespace)}:{${escaped}}*`
    },
  }
}
