import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import { InvalidArgumentError } from './errors.js'
import { escapeGlobPart, escapeKeyPart, globMatcher, keyspace, unescapeKeyPart } from './keys.js'

function hashTag(key: string): string {
  const open = key.indexOf('{')
  const close = key.indexOf('}', open + 1)
  return key.slice(open + 1, close)
}

// Any UTF-16 code unit, lone surrogates included.
const codeUnits = fc.string({ unit: fc.integer({ min: 0, max: 0xffff }).map((c) => String.fromCharCode(c)) })

describe('keyspace', () => {
  const ks = keyspace('rl')

  it('puts the tag in the hash tag and escapes parts', () => {
    expect(ks.key('user:42', 'a')).toBe('rl:{user%3A42}:a')
    expect(ks.key('}{*', 'x:y')).toBe('rl:{%7D%7B%2A}:x%3Ay')
  })

  it('escaping is injective and leaves no structural character', () => {
    fc.assert(
      fc.property(codeUnits, codeUnits, (a, b) => {
        const ea = escapeKeyPart(a)
        expect(ea).not.toMatch(/[:{}*?[\]\\]/)
        // Compared as the UTF-8 bytes ioredis sends, not as JS strings.
        if (a !== b) expect(Buffer.from(ea).equals(Buffer.from(escapeKeyPart(b)))).toBe(false)
      }),
    )
  })

  it('a user tag can never change the hash tag or leave the namespace', () => {
    fc.assert(
      fc.property(fc.string({ minLength: 1 }), fc.array(fc.string()), (tag, parts) => {
        const key = ks.key(tag, ...parts)
        expect(key.startsWith('rl:{')).toBe(true)
        expect(hashTag(key)).toBe(escapeKeyPart(tag))
      }),
    )
  })

  it('patterns stay inside namespace:{…}, so nested namespaces and foreign keys never match', () => {
    expect(ks.pattern()).toBe('rl:{*}*')
    expect(ks.tagOf('rl:{user%3A42}:a')).toBe('user%3A42')
    expect(ks.tagOf('rl:users:{x}')).toBeNull()
    expect(ks.tagOf('rl:42')).toBeNull()
  })

  it('lone surrogates and U+FFFD name three different keys, and escaping round-trips', () => {
    const keys = ['\uD800', '\uDFFF', '\uFFFD', '\uD83D\uDE00', '%uD800'].map((t) => ks.key(t))
    expect(new Set(keys).size).toBe(keys.length)
    // What ioredis sends: each key as UTF-8 bytes. They must still differ.
    expect(new Set(keys.map((k) => Buffer.from(k).toString('hex'))).size).toBe(keys.length)
    fc.assert(
      fc.property(codeUnits, (part) => {
        expect(unescapeKeyPart(escapeKeyPart(part))).toBe(part)
        expect(Buffer.from(escapeKeyPart(part)).toString()).toBe(escapeKeyPart(part))
      }),
    )
  })

  it('globMatcher matches as Redis does, and escapeGlobPart scans a superset of it', () => {
    const cases: Array<[string, string, boolean]> = [
      ['a?b', 'a:b', true],
      ['*A', 'x:', false],
      ['[%]*', '2x', false],
      ['[%]*', '%x', true],
      ['[^a]x', 'bx', true],
      ['[a-c]*', 'cz', true],
      ['\\*', '*', true],
      ['\\*', 'x', false],
      // By characters (outside the BMP too), and sets as Redis reads them: reversed ranges swap,
      // an escaped - is a dash, [] matches nothing, an unclosed [ takes the rest.
      ['room😀*', 'room😀1', true],
      ['[😀-😂]', '😁', true],
      ['x[z-a]', 'xb', true],
      ['x[z-a]', 'x-', false],
      ['x[a\\-c]', 'x-', true],
      ['x[a\\-c]', 'xb', false],
      ['a[bc', 'ac', true],
      ['a[]b', 'ab', false],
      ['a[^]b', 'axb', true],
      ['a*b', 'a\nb', true],
    ]
    for (const [glob, text, expected] of cases)
      expect(globMatcher(glob)(text), `${glob} ${text}`).toBe(expected)
    expect(escapeGlobPart('a?b')).toBe('a*b')
    expect(escapeGlobPart('x[z-a]y😀')).toBe('x*y😀')
    expect(escapeGlobPart('profile:*')).toBe('profile%3A*')
  })

  it('unescapeKeyPart answers null, never throws, for parts escapeKeyPart cannot produce', () => {
    for (const bad of ['%E0%A4%A', '%', '%zz', '%41', 'a:b', '%u12', '{x}'])
      expect(unescapeKeyPart(bad)).toBeNull()
    fc.assert(
      fc.property(codeUnits, (raw) => {
        const part = unescapeKeyPart(raw)
        if (part !== null) expect(escapeKeyPart(part)).toBe(raw)
      }),
    )
  })

  it('rejects empty and structural namespaces and empty tags', () => {
    expect(() => keyspace('')).toThrow(InvalidArgumentError)
    expect(() => keyspace('a{b')).toThrow(/prefix/)
    expect(() => keyspace('a{b', 'namespace')).toThrow(/^namespace/)
    expect(() => keyspace('\uD800')).toThrow(InvalidArgumentError)
    expect(() => ks.key('')).toThrow(InvalidArgumentError)
  })
})
