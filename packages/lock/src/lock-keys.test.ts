import { keyspace } from '@rp/core/kit'
import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import { LockKeys } from './lock-keys.js'

// LockKeys extends the escaped lock key with constant parts; they must stay exactly the keys core's
// keyspace builds, or locks taken by an earlier version would not exclude new holders.
describe('LockKeys', () => {
  it('builds the keys core keyspace builds, for any resource', () => {
    fc.assert(
      fc.property(fc.string({ unit: 'binary', minLength: 1, maxLength: 30 }), (resource) => {
        const keys = new LockKeys('lk')
        const ks = keyspace('lk')
        const lock = keys.lock(resource)
        expect(lock).toBe(ks.key(resource))
        expect(keys.fence(resource)).toBe(ks.key(resource, 'fence'))
        expect(keys.fence(resource, lock)).toBe(ks.key(resource, 'fence'))
        expect(keys.queue(resource, lock)).toBe(ks.key(resource, 'waiters'))
        expect(keys.channel(resource, lock)).toBe(ks.channel(resource, 'released'))
      }),
    )
  })
})
