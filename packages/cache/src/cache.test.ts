import { subscribe, unsubscribe } from 'node:diagnostics_channel'
import { EVENT_CHANNEL, InvalidArgumentError, type RpEvent } from '@rp/core'
import { describeEachTarget, eventually, sleep, uniquePrefix } from '@rp/testing/vitest'
import fc from 'fast-check'
import { Redis } from 'ioredis'
import { afterAll, describe, expect, it } from 'vitest'
import { Cache } from './cache.js'
import { CacheKeys } from './cache-keys.js'

describeEachTarget('Cache', (target) => {
  const redis = target.client()
  const caches: Cache[] = []
  const make = (extra: Partial<ConstructorParameters<typeof Cache>[0]> = {}) => {
    const cache = new Cache({ redis, namespace: uniquePrefix('c'), ttlMs: 60_000, ...extra })
    caches.push(cache)
    return cache
  }
  afterAll(() => Promise.all(caches.map((c) => c.close())))

  it('round-trips values, keeps null and empty strings apart from a miss', async () => {
    const cache = make()
    await cache.set('a', { n: 1 })
    await cache.set('null', null)
    await cache.set('empty', '')
    expect(await cache.get('a')).toEqual({ n: 1 })
    expect(await cache.get('null')).toBeNull()
    expect(await cache.get('empty')).toBe('')
    expect(await cache.get('missing')).toBeUndefined()
    expect(await cache.getMany(['a', 'missing', 'empty'])).toEqual([{ n: 1 }, undefined, ''])
    await cache.setMany([
      { key: 'm1', value: 1 },
      { key: 'm2', value: 2, ttlMs: 5_000 },
    ])
    await cache.deleteMany(['a', 'm1'])
    expect(await cache.getMany(['a', 'm1', 'm2'])).toEqual([undefined, undefined, 2])
  })

  it('expires after ttlMs and puts a TTL of ttl + grace on the entry', async () => {
    const cache = make({ ttlMs: 100, graceMs: 5_000 })
    await cache.set('k', 'v')
    const pttl = await redis.pttl(new CacheKeys(cache.options.namespace, 1).entry('k'))
    expect(pttl).toBeGreaterThan(4_000)
    expect(pttl).toBeLessThanOrEqual(5_100)
    expect(await cache.get('k')).toBe('v')
    await eventually(async () => (await cache.get('k')) === undefined, 2_000, 'the entry to go stale')
  })

  it('getOrSet shares one factory call among concurrent callers in a process', async () => {
    const cache = make()
    let calls = 0
    const factory = async () => {
      calls++
      await sleep(50)
      return 'computed'
    }
    const results = await Promise.all(Array.from({ length: 100 }, () => cache.getOrSet('hot', factory)))
    expect(new Set(results)).toEqual(new Set(['computed']))
    expect(calls).toBe(1)
    expect(await cache.getOrSet('hot', factory)).toBe('computed')
    expect(calls).toBe(1)
  })

  it('serves stale within grace when the factory fails, and throws past grace', async () => {
    const cache = make({ ttlMs: 100, graceMs: 300 })
    await cache.getOrSet('g', async () => 'v1')
    await eventually(async () => (await cache.get('g')) === undefined, 2_000, 'the entry to go stale')
    const failing = async () => {
      throw new Error('db down')
    }
    expect(await cache.getOrSet('g', failing)).toBe('v1')
    expect(cache.stats().staleHits).toBeGreaterThan(0)
    const entry = new CacheKeys(cache.options.prefix, 1).entry('g')
    await eventually(async () => (await redis.exists(entry)) === 0, 2_000, 'the grace period to end')
    await expect(cache.getOrSet('g', failing)).rejects.toThrow('db down')
  })

  it('stale-while-revalidate: returns stale at once and refreshes once in the background', async () => {
    const cache = make({ ttlMs: 100, graceMs: 5_000 })
    await cache.set('s', 'old')
    await eventually(async () => (await cache.get('s')) === undefined, 2_000, 'the entry to go stale')
    let calls = 0
    const factory = async () => {
      calls++
      await sleep(30)
      return 'new'
    }
    expect(await Promise.all([cache.getOrSet('s', factory), cache.getOrSet('s', factory)])).toEqual([
      'old',
      'old',
    ])
    await eventually(async () => (await cache.get('s')) === 'new', 2_000, 'refreshed value')
    expect(calls).toBe(1)
  })

  it('soft timeout returns stale; hard timeout rejects with TimeoutError', async () => {
    const cache = make({ ttlMs: 100, graceMs: 5_000 })
    await cache.set('t', 'stale')
    await eventually(async () => (await cache.get('t')) === undefined, 2_000, 'the entry to go stale')
    const slow = async () => {
      await sleep(300)
      return 'fresh'
    }
    const started = performance.now()
    expect(await cache.getOrSet('t', slow, { softTimeoutMs: 50 })).toBe('stale')
    expect(performance.now() - started).toBeLessThan(250)
    await expect(cache.getOrSet('cold', slow, { hardTimeoutMs: 50 })).rejects.toThrow(/within 50 ms/)
  })

  it('takes over from a loader that died once its lease lapses', async () => {
    const cache = make({ leaseMs: 200 })
    // A loader in another process took the lease and crashed before writing.
    await redis.set(new CacheKeys(cache.options.namespace, 1).lease('orphan'), 'dead-loader', 'PX', 200)
    const started = performance.now()
    expect(await cache.getOrSet('orphan', async () => 'recovered')).toBe('recovered')
    expect(performance.now() - started).toBeGreaterThanOrEqual(150)
    expect(performance.now() - started).toBeLessThan(1_500)
  })

  it('refreshes early when expiry nears, weighted by the factory time (XFetch)', async () => {
    const cache = make({ ttlMs: 1_000, graceMs: 5_000 })
    let calls = 0
    const slow = async () => {
      calls++
      await sleep(500)
      return calls
    }
    expect(await cache.getOrSet('x', slow, { earlyRefresh: true })).toBe(1)
    await sleep(600)
    // ~400 ms of freshness left against a 500 ms factory: each read refreshes with p ≈ 0.45, and
    // ten reads 10 ms apart all still see the fresh value (a refresh takes 500 ms to land).
    for (let i = 0; i < 10; i++) {
      expect(await cache.getOrSet('x', slow, { earlyRefresh: true })).toBe(1)
      await sleep(10)
    }
    await eventually(() => calls === 2, 3_000, 'an early refresh')
    await eventually(async () => (await cache.get('x')) === 2, 3_000, 'the refreshed value')
    expect(calls).toBe(2)
  })

  it('caches "not found" apart from values with negativeTtlMs', async () => {
    const cache = make()
    let calls = 0
    const lookup = async () => {
      calls++
      return undefined
    }
    expect(await cache.getOrSet('nobody', lookup, { negativeTtlMs: 5_000 })).toBeUndefined()
    expect(await cache.getOrSet('nobody', lookup, { negativeTtlMs: 5_000 })).toBeUndefined()
    expect(calls).toBe(1)
    expect(await cache.get('nobody')).toBeUndefined()
    expect(await cache.getOrSet('uncached', lookup)).toBeUndefined()
    expect(await cache.getOrSet('uncached', lookup)).toBeUndefined()
    expect(calls).toBe(3)
  })

  it('invalidateTag hides every tagged entry and leaves the rest', async () => {
    const cache = make()
    await cache.set('u1', 1, { tags: ['team:7'] })
    await cache.set('u2', 2, { tags: ['team:7', 'org:1'] })
    await cache.set('u3', 3, { tags: ['org:1'] })
    await cache.invalidateTag('team:7')
    expect(await cache.getMany(['u1', 'u2', 'u3'])).toEqual([undefined, undefined, 3])
    await cache.set('u1', 10, { tags: ['team:7'] })
    expect(await cache.get('u1')).toBe(10)
  })

  it('keeps tags and values whole whatever characters they hold, with L1 and without', async () => {
    for (const cache of [make(), make({ l1: { maxEntries: 10, ttlMs: 60_000 } })]) {
      // Multi-byte tags: the script skips them by bytes, the client by newlines.
      const tags = ['équipe', '日本', 'a,b', 'new\nline', '%0A', '{t}']
      const value = { text: 'R1,N,T,\n,0,0,', emoji: '😀', nested: ['日本', 'é'] }
      await cache.set('k', value, { tags })
      await cache.set('plain', 'x,y\nz')
      expect(await cache.get('k')).toEqual(value)
      expect(await cache.get('plain')).toBe('x,y\nz')
      expect(await cache.getOrSet('k', () => 'loaded')).toEqual(value)
      await cache.invalidateTag('日本')
      expect(await cache.get('k')).toBeUndefined()
      await cache.set('k', value, { tags })
      await cache.invalidateTag('new\nline')
      expect(await cache.get('k')).toBeUndefined()
      expect(await cache.get('plain')).toBe('x,y\nz')
      expect(cache.stats().decodeErrors).toBe(0)
      await cache.close()
    }
  })

  it('reads an entry of the earlier hash layout until a write replaces it', async () => {
    const cache = make()
    const keys = new CacheKeys(cache.options.namespace, 1)
    await cache.set('t', 0, { tags: ['old'] })
    const version = await redis.hget(keys.tags(0), 'old')
    const fresh = Date.now() + 60_000
    await redis.del(keys.entry('h'), keys.entry('ht'))
    await redis.hset(keys.entry('h'), 'd', JSON.stringify({ v: 1 }), 'f', '1', 'e', fresh, 'c', 5, 't', '')
    await redis.hset(keys.entry('ht'), 'd', '2', 'f', '1', 'e', fresh, 'c', 0, 't', `old\n${version}\n`)
    await redis.pexpire(keys.entry('h'), 60_000)
    await redis.pexpire(keys.entry('ht'), 60_000)
    expect(await cache.get('h')).toEqual({ v: 1 })
    expect(await cache.getOrSet('h', () => 'loaded')).toEqual({ v: 1 })
    expect(await cache.get('ht')).toBe(2)
    await cache.invalidateTag('old')
    expect(await cache.get('ht')).toBeUndefined()
    await cache.set('h', { v: 2 })
    expect(await redis.type(keys.entry('h'))).toBe('string')
    expect(await cache.get('h')).toEqual({ v: 2 })
    expect(cache.stats().decodeErrors).toBe(0)
  })

  it('deleteByPattern escapes glob characters in keys; clear removes the namespace', async () => {
    const cache = make()
    await cache.setMany([
      { key: 'profile:1', value: 1 },
      { key: 'profile:2', value: 2 },
      { key: 'profile*', value: 3 },
      { key: 'other', value: 4 },
    ])
    expect(await cache.deleteByPattern('profile:*')).toBe(2)
    expect(await cache.getMany(['profile:1', 'profile*', 'other'])).toEqual([undefined, 3, 4])
    expect(await cache.clear()).toBeGreaterThanOrEqual(2)
    expect(await cache.getMany(['profile*', 'other'])).toEqual([undefined, undefined])
  })

  it('treats undecodable data as a miss and reports it', async () => {
    const cache = make()
    const events: RpEvent[] = []
    const listener = (e: unknown) => events.push(e as RpEvent)
    subscribe(EVENT_CHANNEL, listener)
    try {
      const entry = new CacheKeys(cache.options.namespace, 1).entry('bad')
      await redis.hset(entry, 'd', '{not json', 'f', '1', 'e', Date.now() + 60_000, 'c', 0, 't', '')
      await redis.pexpire(entry, 60_000)
      expect(await cache.get('bad')).toBeUndefined()
      expect(await cache.getOrSet('bad', () => 'repaired')).toBe('repaired')
      await redis.set(
        new CacheKeys(cache.options.namespace, 1).entry('foreign'),
        'written by another tool',
        'PX',
        60_000,
      )
      expect(await cache.get('foreign')).toBeUndefined()
    } finally {
      unsubscribe(EVENT_CHANNEL, listener)
    }
    expect(events.some((e) => e.event === 'decode-error')).toBe(true)
    expect(cache.stats().decodeErrors).toBeGreaterThan(0)
  })

  it('compresses large values transparently', async () => {
    const cache = make({ compressAboveBytes: 100 })
    const big = 'x'.repeat(10_000)
    await cache.set('big', big)
    expect(await cache.get('big')).toBe(big)
    const stored = await redis.get(new CacheKeys(cache.options.namespace, 1).entry('big'))
    expect(stored!.length).toBeLessThan(1_000)
  })

  it('matches a model of both tiers through random operations', async () => {
    const keys = ['a', 'b', 'c', 'd', 'e', 'f']
    const tags = ['t1', 't2', 't3']
    await fc.assert(
      fc.asyncProperty(
        fc.array(
          fc.oneof(
            // Written by another process (no L1): this process's L1 does not see it (no tracking).
            fc.record({
              op: fc.constant('remoteSet' as const),
              key: fc.constantFrom(...keys),
              value: fc.integer(),
              tag: fc.constantFrom(...tags),
            }),
            fc.record({
              op: fc.constant('set' as const),
              key: fc.constantFrom(...keys),
              value: fc.integer(),
              tag: fc.constantFrom(...tags),
            }),
            fc.record({ op: fc.constant('delete' as const), key: fc.constantFrom(...keys) }),
            fc.record({ op: fc.constant('invalidate' as const), tag: fc.constantFrom(...tags) }),
            fc.record({ op: fc.constant('get' as const), key: fc.constantFrom(...keys) }),
          ),
          { maxLength: 40 },
        ),
        async (ops) => {
          const local = make({ l1: { maxEntries: 100, ttlMs: 60_000 } })
          const remote = new Cache({ redis, namespace: local.options.namespace, ttlMs: 60_000 })
          type Stored = { value: number; tag: string }
          const inRedis = new Map<string, Stored>()
          const inL1 = new Map<string, Stored>()
          for (const step of ops) {
            if (step.op === 'remoteSet') {
              await remote.set(step.key, step.value, { tags: [step.tag] })
              inRedis.set(step.key, { value: step.value, tag: step.tag })
            } else if (step.op === 'set') {
              await local.set(step.key, step.value, { tags: [step.tag] })
              inRedis.set(step.key, { value: step.value, tag: step.tag })
              inL1.set(step.key, { value: step.value, tag: step.tag })
            } else if (step.op === 'delete') {
              await local.delete(step.key)
              inRedis.delete(step.key)
              inL1.delete(step.key)
            } else if (step.op === 'invalidate') {
              await local.invalidateTag(step.tag)
              for (const m of [inRedis, inL1]) for (const [k, v] of m) if (v.tag === step.tag) m.delete(k)
            } else {
              // L1 serves its copy (documented: without tracking, until l1.ttlMs); a miss there
              // reads Redis and fills L1 with the entry and its tags.
              const expected = inL1.get(step.key) ?? inRedis.get(step.key)
              expect(await local.get(step.key)).toBe(expected?.value)
              if (expected) inL1.set(step.key, expected)
            }
          }
          await remote.close()
        },
      ),
      { numRuns: 20 },
    )
  })
})

describe('Cache input validation', () => {
  // A real client that never connects: validation must fail before any I/O.
  const redis = new Redis({ lazyConnect: true })
  it('names the bad option or argument', async () => {
    expect(() => new Cache({ redis, namespace: 'n', ttlMs: 0 })).toThrow(InvalidArgumentError)
    expect(() => new Cache({ redis, namespace: 'n', ttlMs: -1 })).toThrow(/ttlMs/)
    expect(() => new Cache({ redis, namespace: '', ttlMs: 1 })).toThrow(/namespace/)
    expect(() => new Cache({ redis, namespace: 'n', ttlMs: 1, batch: 'yes' as never })).toThrow(/^batch:/)
    const cache = new Cache({ redis, namespace: 'n', ttlMs: 1_000 })
    await expect(cache.get('')).rejects.toThrow(/key/)
    await expect(cache.set('k', undefined)).rejects.toThrow(/value: is undefined/)
    await expect(cache.getOrSet('k', 'nope' as never)).rejects.toThrow(/factory/)
    await expect(cache.set('k', { n: 10n })).rejects.toThrow(/cannot encode the value for key "k"/)
  })
})
