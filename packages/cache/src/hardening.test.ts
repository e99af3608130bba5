import { subscribe, unsubscribe } from 'node:diagnostics_channel'
import {
  AbortError,
  EVENT_CHANNEL,
  InvalidArgumentError,
  keyspace,
  type RpEvent,
  TimeoutError,
  WaitTimeoutError,
} from '@rp/core'
import { describeEachTarget, eventually, expectInvalidArguments, uniquePrefix } from '@rp/testing/vitest'
import { describe, expect, it } from 'vitest'
import { Cache } from './cache.js'
import { CacheKeys } from './cache-keys.js'
import { storedEntry } from './entry.test-helpers.js'

describe('CacheKeys', () => {
  const keys = new CacheKeys('users', 4)

  it('never throws on a key another client planted, malformed escapes included', () => {
    for (const key of [
      'users:{users}:v:%E0%A4%A',
      'users:{users#1}:v:%',
      'users:{users#1}:v:a:b',
      'users:{x',
      'users:{users#9999999999}:v:a',
    ])
      expect(() => keys.userKeyOf(key)).not.toThrow()
    expect(keys.userKeyOf('users:{users}:v:%E0%A4%A')).toBeNull()
    expect(keys.userKeyOf(keys.entry('profile:7'))).toBe('profile:7')
  })

  it('owns only the entries, leases and tag versions it writes', () => {
    expect(keys.owns(keys.entry('a'))).toBe(true)
    expect(keys.owns(keys.lease('a'))).toBe(true)
    expect(keys.owns(keys.tags(3))).toBe(true)
    for (const foreign of [
      'users:42',
      'users:{users#1}:gcra',
      'users:{42}:v:a',
      'users:sub:{users}:v:a',
      'users:{users#x}:v:a',
    ])
      expect(keys.owns(foreign)).toBe(false)
  })

  it('three inputs UTF-8 cannot tell apart still name three entries', () => {
    const entries = ['\uD800', '\uDFFF', '\uFFFD'].map((k) => Buffer.from(keys.entry(k)).toString('hex'))
    expect(new Set(entries).size).toBe(3)
  })
})

describeEachTarget('Cache hardening', (target) => {
  const redis = target.client()
  const other = target.client()

  it('reads a tagged entry as a miss once its tag versions are lost, so an invalidation stays', async () => {
    const prefix = uniquePrefix('hc')
    const cache = new Cache({ redis, prefix, ttlMs: 60_000 })
    await cache.set('a', 'old', { tags: ['t'] })
    await cache.invalidateTag('t')
    expect(await cache.get('a')).toBeUndefined()
    // Evicted (allkeys-* policies) or deleted: a missing version must not read as the first one.
    const keys = new CacheKeys(prefix, cache.options.shards)
    for (let shard = 0; shard < cache.options.shards; shard++) await redis.del(keys.tags(shard))
    expect(await cache.get('a')).toBeUndefined()
    await cache.set('b', 'new', { tags: ['t'] })
    expect(await cache.get('b')).toBe('new')
  })

  it('replaces a key of another type where the tag versions live, instead of failing as if Redis were down', async () => {
    const prefix = uniquePrefix('hc')
    const cache = new Cache({ redis, prefix, ttlMs: 60_000 })
    const keys = new CacheKeys(prefix, cache.options.shards)
    for (let shard = 0; shard < cache.options.shards; shard++) await redis.set(keys.tags(shard), 'junk')
    await cache.set('z', 1, { tags: ['t'] })
    expect(await cache.get('z')).toBe(1)
    await cache.invalidateTag('t')
    expect(await cache.get('z')).toBeUndefined()
    expect(await cache.getOrSet('y', () => 2, { tags: ['u'] })).toBe(2)
    expect(cache.stats().errors).toBe(0)
  })

  it('a factory that never settles holds its key in this process only until its lease lapses', async () => {
    const cache = new Cache({ redis, prefix: uniquePrefix('hc'), ttlMs: 60_000, leaseMs: 200 })
    void cache.getOrSet('h', () => new Promise(() => {}))
    await new Promise((r) => setTimeout(r, 400))
    const fresh = cache.getOrSet('h', () => 'fresh', { hardTimeoutMs: 3_000 })
    expect(await fresh).toBe('fresh')
  })

  it('a key without a TTL at the lease name (not a lease of ours) does not make loaders wait forever', async () => {
    const prefix = uniquePrefix('hc')
    const cache = new Cache({ redis, prefix, ttlMs: 60_000 })
    const keys = new CacheKeys(prefix, cache.options.shards)
    await redis.hset(keys.lease('x'), 'f', 'v')
    expect(await cache.getOrSet('x', () => 42, { hardTimeoutMs: 3_000 })).toBe(42)
  })

  it("a caller without a hard timeout does not fail with another caller's", async () => {
    const cache = new Cache({ redis, prefix: uniquePrefix('hc'), ttlMs: 60_000 })
    const slow = () => new Promise<string>((r) => setTimeout(() => r('slow'), 300))
    const bounded = cache.getOrSet('s', slow, { hardTimeoutMs: 100 })
    const patient = cache.getOrSet('s', () => 'other')
    await expect(bounded).rejects.toBeInstanceOf(TimeoutError)
    expect(['slow', 'other']).toContain(await patient)
  })

  it('clear() and deleteByPattern() delete only what this cache wrote', async () => {
    const ns = uniquePrefix('own')
    const cache = new Cache({ redis, namespace: ns, ttlMs: 60_000 })
    const nested = new Cache({ redis, namespace: `${ns}:users`, ttlMs: 60_000 })
    await cache.set('a', 1, { tags: ['t'] })
    await cache.set('b', 2)
    await nested.set('a', 3)
    // An application's own keys and another package's keys under the same prefix.
    const planted = [`${ns}:42`, keyspace(ns).key('k', 'gcra'), `${ns}:{${ns}}`, `${ns}x:{${ns}}:v:a`]
    await Promise.all(planted.map((k) => other.set(k, 'x', 'PX', 60_000)))
    expect(await cache.deleteByPattern('a')).toBe(1)
    expect(await cache.clear()).toBe(2) // b and the tag versions
    for (const k of planted) expect(await other.exists(k)).toBe(1)
    expect(await nested.get('a')).toBe(3)
    await Promise.all([cache.close(), nested.close()])
  })

  it('deleteByPattern matches the glob against real keys, not their escaped form', async () => {
    const cache = new Cache({ redis, namespace: uniquePrefix('glob'), ttlMs: 60_000 })
    for (const k of ['x:', '2x', '5y', 'a:b', 'aXb', 'profile:1', 'profile:22']) await cache.set(k, 1)
    expect(await cache.deleteByPattern('*A')).toBe(0)
    expect(await cache.deleteByPattern('[%]*')).toBe(0)
    expect(await cache.deleteByPattern('a?b')).toBe(2)
    expect(await cache.deleteByPattern('profile:?')).toBe(1)
    expect(await cache.get('profile:22')).toBe(1)
    expect(await cache.get('x:')).toBe(1)
    await cache.close()
  })

  it("an undecodable entry under another loader's lease is waited on, not hammered", async () => {
    const ns = uniquePrefix('spin')
    const keys = new CacheKeys(ns, 1)
    const cache = new Cache({ redis, namespace: ns, ttlMs: 60_000 })
    await other.hset(
      keys.entry('k'),
      'd',
      'not json',
      'f',
      '1',
      'e',
      String(Date.now() + 60_000),
      'c',
      '0',
      't',
      '',
    )
    await other.pexpire(keys.entry('k'), 60_000)
    await other.set(keys.lease('k'), 'other', 'PX', 600)
    const before = cache.stats().decodeErrors
    expect(await cache.getOrSet('k', () => 'fresh')).toBe('fresh')
    // Each round is a read: a busy loop made thousands of them before the lease lapsed.
    expect(cache.stats().decodeErrors - before).toBeLessThan(20)
    await cache.close()
  })

  it('getOrSet takes a signal, and a hard timeout is a WaitTimeoutError naming the key', async () => {
    const cache = new Cache({ redis, prefix: uniquePrefix('sig'), ttlMs: 60_000 })
    const controller = new AbortController()
    const slow = () => new Promise<string>((r) => setTimeout(() => r('late'), 300))
    const aborted = cache.getOrSet('k', slow, { signal: controller.signal })
    controller.abort()
    await expect(aborted).rejects.toBeInstanceOf(AbortError)
    // The load it started went on for others, and was cached.
    await eventually(async () => (await cache.get('k')) === 'late', 2_000, 'the shared load to finish')
    const error = await cache.getOrSet('h', slow, { hardTimeoutMs: 50 }).catch((e: unknown) => e)
    expect(error).toBeInstanceOf(WaitTimeoutError)
    expect(error).toBeInstanceOf(TimeoutError)
    expect(error).toMatchObject({ resource: 'h', waitMs: 50 })
    expect(cache.options.prefix).toBe(cache.options.namespace)
    expect('redis' in cache.options).toBe(false)
    await cache.close()
  })

  it('tags are encoded injectively: a newline can neither forge nor hide an invalidation', async () => {
    const cache = new Cache({ redis, namespace: uniquePrefix('nl'), ttlMs: 60_000 })
    await cache.set('y', 'old', { tags: ['y'] })
    await cache.set('ab', 'kept', { tags: ['a\nb'] })
    await cache.invalidateTag('x\n0\ny')
    expect(await cache.get('y')).toBe('old')
    expect(await cache.get('ab')).toBe('kept')
    await cache.invalidateTag('a\nb')
    expect(await cache.get('ab')).toBeUndefined()
    await cache.close()
  })

  it("L1 entries filled by get() record the entry's tags, and a racing invalidation keeps them out", async () => {
    const ns = uniquePrefix('l1t')
    const writer = new Cache({ redis: other, namespace: ns, ttlMs: 60_000 })
    const local = new Cache({ redis, namespace: ns, ttlMs: 60_000, l1: { maxEntries: 10, ttlMs: 60_000 } })
    await writer.set('k', 'v', { tags: ['t'] })
    expect(await local.get('k')).toBe('v')
    await local.invalidateTag('t')
    expect(await local.get('k')).toBeUndefined()

    await writer.set('r', 'v')
    // The read is sent first (same connection, so answered first) with the old value; the delete
    // issued meanwhile must stop that answer from filling L1.
    const read = local.get('r')
    const deleted = local.delete('r')
    expect(await read).toBe('v')
    await deleted
    expect(await local.get('r')).toBeUndefined()
    await Promise.all([writer.close(), local.close()])
  })

  it('tag versions outlive every entry that refers to them', async () => {
    const ns = uniquePrefix('life')
    const cache = new Cache({ redis, namespace: ns, ttlMs: 1_000 })
    await cache.set('long', 'v', { ttlMs: 120_000, tags: ['t'] })
    await cache.invalidateTag('t')
    expect(await redis.pttl(new CacheKeys(ns, 1).tags(0))).toBeGreaterThan(100_000)
    expect(await cache.get('long')).toBeUndefined()
    await cache.close()
  })

  it('a poisoned key is a per-key miss that getOrSet repairs; it never opens the circuit', async () => {
    const ns = uniquePrefix('poison')
    const keys = new CacheKeys(ns, 1)
    const cache = new Cache({ redis, namespace: ns, ttlMs: 60_000 })
    await cache.set('healthy', 'ok')
    await other.set(keys.entry('str'), 'not a hash', 'PX', 60_000)
    await other.hset(keys.entry('nan'), 'd', '1', 'f', '1', 'e', 'soon')
    await other.pexpire(keys.entry('nan'), 60_000)
    for (let i = 0; i < 10; i++) {
      expect(await cache.get('str')).toBeUndefined()
      expect(await cache.get('nan')).toBeUndefined()
    }
    expect(cache.stats().decodeErrors).toBe(20)
    expect(cache.stats().errors).toBe(0)
    expect(await cache.get('healthy')).toBe('ok')
    expect(await cache.getOrSet('str', () => 'fixed')).toBe('fixed')
    expect(await cache.get('str')).toBe('fixed')
    await cache.close()
  })

  it('a foreign string shaped almost like an entry is corrupt, not a stale or tagless hit', async () => {
    const ns = uniquePrefix('forged')
    const keys = new CacheKeys(ns, 1)
    const cache = new Cache({ redis, namespace: ns, ttlMs: 60_000 })
    const fresh = String(Date.now() + 60_000)
    const forged = {
      nan: 'R1          nanN0,1,0,0,1',
      hex: 'R1 0x1A2B3C4D5EN0,1,0,0,1',
      short: `R1${fresh.slice(1)}N0,1,0,0,1`,
      // Lists a tag but says untagged: Lua would skip the check that L1 then relies on.
      untagged: `R1${fresh}N0,1,1,4,t\n1\n1`,
      tooManyTags: `R1${fresh}T0,1,101,${101 * 4},${'t\n0\n'.repeat(101)}1`,
    }
    for (const [key, value] of Object.entries(forged)) await other.set(keys.entry(key), value, 'PX', 60_000)
    for (const key of Object.keys(forged)) {
      expect(await cache.get(key)).toBeUndefined()
      expect(await cache.getOrSet(key, () => 'repaired')).toBe('repaired')
    }
    // Each get reports once; a getOrSet over a value only the client can tell is foreign reads it twice.
    expect(cache.stats().decodeErrors).toBeGreaterThanOrEqual(2 * Object.keys(forged).length)
    expect(cache.stats().errors).toBe(0)
    await cache.close()
  })

  it('getOrSet rejects bad options and unencodable values, and frees its lease for the next caller', async () => {
    const ns = uniquePrefix('gos')
    const a = new Cache({ redis, namespace: ns, ttlMs: 60_000 })
    const b = new Cache({ redis: other, namespace: ns, ttlMs: 60_000 })
    for (const options of [
      { ttlMs: -5 },
      { graceMs: Number.NaN },
      // A TTL a timer could not hold: one such set would keep the entry, and the tags hash, for ages.
      { graceMs: 2 ** 53 - 1 },
      { tags: [''] },
      { tags: 'abc' },
      { hardTimeoutMs: 0 },
    ])
      await expect(a.getOrSet('k', () => 1, options as never)).rejects.toThrow(InvalidArgumentError)
    await expect(a.set('k', 1, { graceMs: 2 ** 53 - 1 })).rejects.toThrow(/^graceMs:/)
    expect(() => new Cache({ redis, namespace: ns, ttlMs: 60_000, graceMs: 2 ** 31 })).toThrow(/^graceMs:/)
    const circular: Record<string, unknown> = {}
    circular.self = circular
    for (const [i, bad] of [10n, circular, new Map([[1, 2]])].entries()) {
      await expect(a.getOrSet(`k${i}`, () => bad)).rejects.toThrow(InvalidArgumentError)
      // Another process does not wait out leaseMs (10 s) for a lease nobody holds.
      const started = performance.now()
      expect(await b.getOrSet(`k${i}`, () => 'good')).toBe('good')
      expect(performance.now() - started).toBeLessThan(500)
    }
    await Promise.all([a.close(), b.close()])
  })

  it('frees the lease when the loader cannot write its value', async () => {
    const ns = uniquePrefix('wfail')
    const keys = new CacheKeys(ns, 1)
    const cache = new Cache({ redis, namespace: ns, ttlMs: 60_000 })
    // The tag versions hash has the wrong type, so the write script fails.
    await other.set(keys.tags(0), 'x', 'PX', 60_000)
    expect(await cache.getOrSet('k', () => 'v', { tags: ['t'] })).toBe('v')
    expect(await other.exists(keys.lease('k'))).toBe(0)
    await cache.close()
  })

  it('values round-trip exactly or are refused, and every call answers alike', async () => {
    const cache = new Cache({ redis, namespace: uniquePrefix('exact'), ttlMs: 60_000 })
    for (const value of [
      new Map(),
      new Set([1]),
      new Date(0),
      Number.NaN,
      Number.POSITIVE_INFINITY,
      { a: undefined },
      [1, undefined],
      () => 1,
    ])
      await expect(cache.set('v', value)).rejects.toThrow(InvalidArgumentError)
    for (let i = 0; i < 2; i++)
      await expect(cache.getOrSet('m', () => new Map())).rejects.toThrow(InvalidArgumentError)
    const value = { n: 1, list: [1, 'two', null, { deep: true }], s: '\uD800' }
    await cache.set('ok', value)
    expect(await cache.get('ok')).toEqual(value)
    await cache.close()
  })

  it('L1 hands out copies: mutating what set() took or get() returned changes nothing cached', async () => {
    const cache = new Cache({
      redis,
      namespace: uniquePrefix('ref'),
      ttlMs: 60_000,
      l1: { maxEntries: 10, ttlMs: 60_000 },
    })
    const input = { n: 1 }
    await cache.set('k', input)
    input.n = 2
    const first = await cache.get<{ n: number }>('k')
    expect(first).toEqual({ n: 1 })
    first!.n = 3
    expect(await cache.get('k')).toEqual({ n: 1 })
    expect(cache.stats().l1Hits).toBe(2)
    await cache.close()
  })

  it('every entry point rejects bad input with InvalidArgumentError naming it, never synchronously', async () => {
    const cache = new Cache({ redis, namespace: uniquePrefix('bad'), ttlMs: 60_000 })
    const calls: Array<[() => Promise<unknown>, RegExp]> = [
      [() => cache.get(''), /^key/],
      [() => cache.set('k', 1, { tags: 'abc' as never }), /^tags/],
      [() => cache.set('k', 1, { tags: Array.from({ length: 101 }, (_, i) => `t${i}`) }), /^tags/],
      [() => cache.getMany('x' as never), /^keys/],
      [() => cache.deleteMany('x' as never), /^keys/],
      [() => cache.delete(1 as never), /^key/],
      [() => cache.invalidateTag(''), /^tag/],
      [() => cache.deleteByPattern(''), /^glob:/],
      [() => cache.setMany(null as never), /^entries/],
      [() => cache.setMany([undefined] as never), /^entries\[0\]/],
      [
        () =>
          cache.setMany([
            { key: 'a', value: 1 },
            { key: 'b', value: 1, ttlMs: -1 },
          ]),
        /^entries\[1\]\.ttlMs:/,
      ],
      [() => cache.setMany([{ key: 'a', value: 1, tags: [''] }]), /^entries\[0\]\.tags/],
      [() => cache.getOrSet('k', () => 1, { timeoutMs: 5 } as never), /softTimeoutMs/],
    ]
    await expectInvalidArguments(calls)
    expect(() => new Cache({ redis, namespace: 'a{b', ttlMs: 1 })).toThrow(/^namespace/)
    expect(() => new Cache({ redis, prefix: 'a{b', ttlMs: 1 })).toThrow(/^prefix/)
    expect(() => new Cache({ redis, prefix: 'a', namespace: 'b', ttlMs: 1 })).toThrow(/^prefix/)
    expect(() => new Cache({ redis, namespace: 'n', ttlMs: 1, shards: 2 ** 32 })).toThrow(/^shards/)
    expect(() => new Cache({ redis, namespace: 'n', ttlMs: 1, tracking: 'yes' as never })).toThrow(
      /^tracking/,
    )
    await cache.close()
  })
})

describeEachTarget('tracking and foreign keys', (target) => {
  it('a malformed key written by another client neither crashes the process nor stops L1', async () => {
    const redis = target.client()
    const other = target.client()
    const ns = uniquePrefix('foreign')
    const cache = new Cache({
      redis,
      namespace: ns,
      ttlMs: 60_000,
      l1: { maxEntries: 10, ttlMs: 60_000 },
      tracking: true,
    })
    const uncaught: unknown[] = []
    const onUncaught = (e: unknown) => uncaught.push(e)
    process.on('uncaughtException', onUncaught)
    const events: RpEvent[] = []
    const onEvent = (e: unknown) => events.push(e as RpEvent)
    subscribe(EVENT_CHANNEL, onEvent)
    try {
      await cache.ready()
      await cache.set('k', 'v1')
      await other.set(`${ns}:{${ns}}:v:%E0%A4%A`, 'x', 'PX', 60_000)
      await other.set(new CacheKeys(ns, 1).entry('k'), storedEntry(JSON.stringify('v2')), 'PX', 60_000)
      await eventually(async () => (await cache.get('k')) === 'v2', 2_000, 'tracking still evicts')
      expect(uncaught).toEqual([])
      expect(events.filter((e) => e.event === 'callback-error')).toEqual([])
    } finally {
      process.off('uncaughtException', onUncaught)
      unsubscribe(EVENT_CHANNEL, onEvent)
      await cache.close()
    }
  })
})
