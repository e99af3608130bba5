import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import { InvalidArgumentError } from './errors.js'
import { escapeKeyPart, keyspace } from './keys.js'

function hashTag(key: string): string {
  const open = key.indexOf('{')
  const close = key.indexOf('}', open + 1)
  return key.slice(open + 1, close)
}

describe('keyspace', () => {
  const ks = keyspace('rl')

  it('puts the tag in the hash tag and escapes parts', () => {
    expect(ks.key('user:42', 'a')).toBe('rl:{user%3A42}:a')
    expect(ks.key('}{*', 'x:y')).toBe('rl:{%7D%7B%2A}:x%3Ay')
  })

  it('escaping is injective and leaves no structural character', () => {
    fc.assert(
      fc.property(fc.string(), fc.string(), (a, b) => {
        const ea = escapeKeyPart(a)
        expect(ea).not.toMatch(/[:{}*?[\]\\]/)
        if (a !== b) expect(ea).not.toBe(escapeKeyPart(b))
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

  it('shared keys cannot collide with any user tag', () => {
    fc.assert(
      fc.property(fc.string({ minLength: 1 }), (tag) => {
        expect(ks.key(tag, 'x')).not.toBe(ks.shared('x'))
      }),
    )
    expect(hashTag(ks.shared('x'))).toBe('rl:')
  })

  it('tag patterns keep wildcards and escape literals', () => {
    expect(ks.tagPattern('profile:*')).toBe('rl:{profile%3A*}*')
    expect(ks.pattern()).toBe('rl:*')
  })

  it('rejects empty and structural namespaces and empty tags', () => {
    expect(() => keyspace('')).toThrow(InvalidArgumentError)
    expect(() => keyspace('a{b')).toThrow(/prefix/)
    expect(() => ks.key('')).toThrow(InvalidArgumentError)
  })
})
