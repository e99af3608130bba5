import { InvalidArgumentError } from './errors.js'
import { describe } from './validate.js'

// Characters that give a key structure: ':' separates parts, '{' '}' delimit the hash tag,
// '*' '?' '[' ']' '\' are glob syntax in SCAN MATCH, and '%' is our own escape character. Lone
// surrogates are escaped too: UTF-8 cannot carry them, so ioredis would send each as U+FFFD and
// '\uD800', '\uDFFF' and '\uFFFD' would all name one key.
const SPECIAL = /[%:{}*?[\]\\]|[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/g
const HAS_SPECIAL = /[%:{}*?[\]\\\uD800-\uDFFF]/
const ESCAPED = /%(?:u([0-9A-F]{4})|([0-9A-F]{2}))/g
const WELL_FORMED = /^(?:[^%]|%u[0-9A-F]{4}|%[0-9A-F]{2})*$/

/**
 * Percent-encodes the characters that carry meaning in a key or a SCAN pattern (and lone
 * surrogates, as `%uXXXX`). The mapping is injective, so two different inputs never produce the
 * same key, and an escaped part can neither leave its namespace, open a hash tag, nor act as a
 * wildcard.
 */
export function escapeKeyPart(part: string): string {
  // Most keys need no escaping; skipping replace() keeps key building off the profile.
  if (!HAS_SPECIAL.test(part)) return part
  return part.replace(SPECIAL, (c) => {
    const code = c.charCodeAt(0)
    return code >= 0xd800
      ? `%u${code.toString(16).toUpperCase()}`
      : `%${code.toString(16).toUpperCase().padStart(2, '0')}`
  })
}

/**
 * The inverse of escapeKeyPart, or null when `escaped` is not something escapeKeyPart produces
 * (a key another client wrote by hand): never throws, so a foreign key cannot crash a listener.
 */
export function unescapeKeyPart(escaped: string): string | null {
  if (!escaped.includes('%')) return escapeKeyPart(escaped) === escaped ? escaped : null
  if (!WELL_FORMED.test(escaped)) return null
  const part = escaped.replace(ESCAPED, (_, u: string | undefined, hex: string | undefined) =>
    String.fromCharCode(Number.parseInt((u ?? hex)!, 16)),
  )
  return escapeKeyPart(part) === escaped ? part : null
}

/** Escapes a literal for use inside a SCAN MATCH pattern (glob), keeping everything else literal. */
export function escapeGlob(literal: string): string {
  return literal.replace(/[*?[\]\\]/g, (c) => `\\${c}`)
}

type GlobToken =
  | { literal: string }
  | { star: true }
  | { one: true }
  | { set: { negate: boolean; items: Array<string | [string, string]> } }

/**
 * Redis glob syntax as tokens, read as Redis's stringmatchlen reads it, by characters (code points:
 * a character outside the BMP is one character, not two halves): `*`, `?`, `\` escapes, and `[…]`
 * with `^`, ranges (a reversed one, `z-a`, is swapped, as Redis does), `\` escapes inside, `[]`
 * matching nothing, and a `[` never closed taking the rest of the glob as its set.
 */
function parseGlob(glob: string): GlobToken[] {
  const chars = Array.from(glob)
  const tokens: GlobToken[] = []
  for (let i = 0; i < chars.length; i++) {
    const c = chars[i]!
    if (c === '\\' && i + 1 < chars.length) tokens.push({ literal: chars[++i]! })
    else if (c === '*') tokens.push({ star: true })
    else if (c === '?') tokens.push({ one: true })
    else if (c === '[') {
      let j = i + 1
      const negate = chars[j] === '^'
      if (negate) j++
      const items: Array<string | [string, string]> = []
      for (; j < chars.length && chars[j] !== ']'; j++) {
        const here = chars[j]!
        if (here === '\\' && j + 1 < chars.length) items.push(chars[++j]!)
        else if (chars[j + 1] === '-' && j + 2 < chars.length) {
          const from = here
          const to = chars[j + 2]!
          items.push(from.codePointAt(0)! <= to.codePointAt(0)! ? [from, to] : [to, from])
          j += 2
        } else items.push(here)
      }
      tokens.push({ set: { negate, items } })
      i = j
    } else tokens.push({ literal: c })
  }
  return tokens
}

/** A character as a regular-expression escape that means only itself (with the u flag). */
function regexChar(c: string): string {
  return `\\u{${c.codePointAt(0)!.toString(16)}}`
}

/**
 * A SCAN pattern over escaped key parts that matches at least every part whose unescaped form
 * matches `glob`: literals are escaped as escapeKeyPart escapes them, and since one escaped
 * character may be several stored ones, `?` and `[…]` widen to `*`. Pair it with globMatcher to
 * keep only exact matches.
 */
export function escapeGlobPart(glob: string): string {
  return parseGlob(glob)
    .map((t) => ('literal' in t ? escapeGlob(escapeKeyPart(t.literal)) : '*'))
    .join('')
    .replace(/\*+/g, '*')
}

/** Whether a string (an unescaped key part) matches a Redis-style glob, exactly as Redis would. */
export function globMatcher(glob: string): (text: string) => boolean {
  const source = parseGlob(glob)
    .map((t) => {
      if ('literal' in t) return regexChar(t.literal)
      if ('star' in t) return '[\\s\\S]*'
      if ('one' in t) return '[\\s\\S]'
      const body = t.set.items
        .map((item) =>
          typeof item === 'string' ? regexChar(item) : `${regexChar(item[0])}-${regexChar(item[1])}`,
        )
        .join('')
      return `[${t.set.negate ? '^' : ''}${body}]`
    })
    .join('')
  const re = new RegExp(`^${source}$`, 'u')
  return (text) => re.test(text)
}

export interface Keyspace {
  /** The namespace, e.g. `rl` or `cache:users`. */
  readonly namespace: string
  /**
   * `namespace:{tag}:part:part`. Every key with the same tag lands in the same cluster slot, so a
   * script may touch all of them. Tag and parts are escaped.
   */
  key(tag: string, ...parts: Array<string | number>): string
  /**
   * A pub/sub channel next to the keys of `tag`: `namespace:{tag}:part…`, escaped like a key.
   * PUBLISH reaches every node of a cluster, so the tag only keeps names readable and unique.
   */
  channel(tag: string, ...parts: Array<string | number>): string
  /**
   * SCAN pattern over keys of this namespace: `namespace:{<tagGlob>}<rest>`. `tagGlob` is matched
   * against the escaped tag (default `*`: any tag); `rest` is a raw glob suffix after the tag,
   * default `*`. It can never match a key outside `namespace:{…}`, so neither a nested namespace
   * (`ns:sub`) nor an application's own `ns:42` is touched.
   */
  pattern(tagGlob?: string, rest?: string): string
  /** The escaped tag of a key of this namespace, or null for any other key. */
  tagOf(key: string): string | null
}

/**
 * Namespaced, cluster-safe key builder: every @rp package builds its keys with it. `option` names
 * the user's option in errors (`prefix`, `namespace`).
 */
export function keyspace(namespace: string, option = 'prefix'): Keyspace {
  if (typeof namespace !== 'string' || namespace.length === 0) {
    throw new InvalidArgumentError(option, `must be a non-empty string, got ${describe(namespace)}`)
  }
  if (/[{}*?[\]\\\uD800-\uDFFF]/.test(namespace)) {
    throw new InvalidArgumentError(
      option,
      `must not contain { } * ? [ ] \\ or lone surrogates, got ${JSON.stringify(namespace)}`,
    )
  }
  const head = `${namespace}:{`
  // Built on every hot call: a loop of concatenations, not map and join (two arrays per key).
  const key = (tag: string, ...parts: Array<string | number>) => {
    if (typeof tag !== 'string' || tag.length === 0)
      throw new InvalidArgumentError('key', `must be a non-empty string, got ${describe(tag)}`)
    let built = `${head}${escapeKeyPart(tag)}}`
    for (let i = 0; i < parts.length; i++) built += `:${escapeKeyPart(String(parts[i]))}`
    return built
  }
  return {
    namespace,
    key,
    channel: key,
    pattern(tagGlob = '*', rest = '*') {
      return `${escapeGlob(namespace)}:{${tagGlob}}${rest}`
    },
    tagOf(k) {
      if (!k.startsWith(head)) return null
      const close = k.indexOf('}', head.length)
      return close < 0 ? null : k.slice(head.length, close)
    },
  }
}
