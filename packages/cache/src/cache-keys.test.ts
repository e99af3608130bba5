import { keyspace } from '@rp/core/kit'
import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import { CacheKeys } from './cache-keys.js'

// CacheKeys builds entry, lease and tags keys from a memoised shard head; they must stay exactly
// the keys core's keyspace builds, or entries written before would no longer be found.
describe('CacheKeys', () => {
  it('builds the keys core keyspace builds, for any namespace part, key and shard count', () => {
    fc.assert(
      fc.property(
        fc.stringMatching(/^[a-z][a-z0-9:#.-]{0,12}$/),
        fc.string({ unit: 'binary', minLength: 1, maxLength: 20 }),
        fc.integer({ min: 1, max: 1024 }),
        (namespace, key, shards) => {
          const keys = new CacheKeys(namespace, shards)
          const ks = keyspace(namespace, 'namespace')
          const shard = keys.shardOf(key)
          const tag = shards === 1 ? namespace : `${namespace}#${shard}`
          // Twice: the second answer comes from the memo.
          for (let i = 0; i < 2; i++) {
            expect(keys.entry(key)).toBe(ks.key(tag, 'v', key))
            expect(keys.lease(key)).toBe(ks.key(tag, 'lease', key))
            expect(keys.tagsFor(key)).toBe(ks.key(tag, 'tags'))
            expect(keys.userKeyOf(keys.entry(key))).toBe(key)
          }
        },
      ),
    )
  })
})
