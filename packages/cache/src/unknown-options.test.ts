import { expectInvalidArguments } from '@rp/testing/vitest'
import { Redis } from 'ioredis'
import { afterAll, expect, it } from 'vitest'
import { Cache } from './cache.js'

// A misspelt option must be refused, not silently replaced by its default. Nothing here reaches Redis.
const redis = new Redis({ lazyConnect: true })
afterAll(() => redis.disconnect())

it('refuses a misspelt constructor option, naming it', () => {
  expect(() => new Cache({ redis, prefix: 'c', ttlMs: 1_000, ttl: 5 } as never)).toThrow(
    /ttl: is not a known option/,
  )
  expect(
    () => new Cache({ redis, prefix: 'c', ttlMs: 1_000, l1: { maxEntries: 5, ttlMs: 5, max: 9 } } as never),
  ).toThrow(/l1\.max: is not a known option/)
})

it('rejects a misspelt call option, naming it, and setMany writes nothing when one entry is bad', async () => {
  const cache = new Cache({ redis, prefix: 'c', ttlMs: 1_000 })
  await expectInvalidArguments([
    [() => cache.set('k', 1, { ttl: 5 } as never), /ttl: is not a known option/],
    [() => cache.getOrSet('k', () => 1, { tag: ['a'] } as never), /tag: is not a known option/],
    [
      () => cache.setMany([{ key: 'a', value: 1 }, { key: 'b', value: 2, grace: 5 } as never]),
      /entries\[1\]\.grace/,
    ],
    [
      () =>
        cache.setMany([
          { key: 'a', value: 1 },
          { key: '', value: 2 },
        ]),
      /entries\[1\]\.key/,
    ],
  ])
  // The client never connected: the bad entry was caught before the good one was sent.
  expect(redis.status).toBe('wait')
  await cache.close()
})
