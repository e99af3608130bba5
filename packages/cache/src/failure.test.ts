import { isRpError, parseInfo, RedisOutOfMemoryError, TimeoutError } from '@rp/core'
import { type RedisServer, startRedis } from '@rp/testing'
import { fillToMaxmemory } from '@rp/testing/vitest'
import { Redis } from 'ioredis'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { Cache } from './cache.js'
import { CacheKeys } from './cache-keys.js'

let server: RedisServer
let redis: Redis
beforeAll(async () => {
  server = await startRedis({ ownServer: true })
  redis = new Redis(server.url, { maxRetriesPerRequest: 1 }).on('error', () => {})
})
afterAll(async () => {
  redis.disconnect()
  await server.stop()
})

async function commandCalls(): Promise<Record<string, number>> {
  const stats = parseInfo(await redis.info('commandstats'))
  return Object.fromEntries(
    Object.entries(stats).map(([k, v]) => [k.replace('cmdstat_', ''), Number(/calls=(\d+)/.exec(v)![1])]),
  )
}

describe('round trips', () => {
  it('a Redis hit is one command, tag check included; an L1 hit is none; invalidateTag is one', async () => {
    const cache = new Cache({ redis, namespace: 'rt', ttlMs: 60_000 })
    await cache.set('k', { v: 1 }, { tags: ['a', 'b'] })
    await cache.get('k')
    await redis.config('RESETSTAT')
    for (let i = 0; i < 100; i++) expect(await cache.get('k')).toEqual({ v: 1 })
    let calls = await commandCalls()
    expect(calls.evalsha).toBe(100)
    // Inside the script: TIME, GET, and one HGET per tag.
    expect(
      Object.keys(calls)
        .filter((c) => c !== 'info')
        .sort(),
    ).toEqual(['config|resetstat', 'evalsha', 'get', 'hget', 'time'])
    expect(calls.time).toBe(100)

    const local = new Cache({ redis, namespace: 'rt', ttlMs: 60_000, l1: { maxEntries: 10, ttlMs: 60_000 } })
    await local.get('k')
    await redis.config('RESETSTAT')
    for (let i = 0; i < 100; i++) expect(await local.get('k')).toEqual({ v: 1 })
    calls = await commandCalls()
    expect(calls.evalsha ?? 0).toBe(0)

    await redis.config('RESETSTAT')
    await cache.invalidateTag('a')
    calls = await commandCalls()
    // One script call: this client's first of that script, so EVAL (it loads the script in order).
    expect((calls.evalsha ?? 0) + (calls.eval ?? 0)).toBe(1)
    expect(await cache.get('k')).toBeUndefined()
    await Promise.all([cache.close(), local.close()])
  })
})

describe('when Redis is paused (SIGSTOP)', () => {
  it('get and getOrSet fail open within timeoutMs, then the circuit opens', async () => {
    const cache = new Cache({ redis, namespace: 'pause', ttlMs: 60_000, timeoutMs: 200 })
    await cache.set('k', 'v')
    await server.pause()
    try {
      let started = performance.now()
      expect(await cache.get('k')).toBeUndefined()
      expect(performance.now() - started).toBeLessThan(200 + 150)
      started = performance.now()
      expect(await cache.getOrSet('k', async () => 'from factory')).toBe('from factory')
      expect(performance.now() - started).toBeLessThan(200 + 150)
      for (let i = 0; i < 5; i++) await cache.get('k')
      // The breaker is open now: no more waiting on a dead server.
      started = performance.now()
      expect(await cache.get('k')).toBeUndefined()
      expect(performance.now() - started).toBeLessThan(20)
      expect(cache.stats().errors).toBeGreaterThanOrEqual(5)
    } finally {
      await server.resume()
    }
    await cache.close()
  })
})

describe('bounded even on a plain ioredis client', () => {
  it('clear(), deleteByPattern() and close() settle within timeoutMs with an @rp error while Redis is paused', async () => {
    // A plain client has no command timeout: only the cache's own bound can end these calls.
    const plain = new Redis(server.url).on('error', () => {})
    const cache = new Cache({ redis: plain, namespace: 'pclear', ttlMs: 60_000, timeoutMs: 200 })
    await cache.set('k', 'v')
    await cache.getOrSet('w', () => 'v') // opens the pub/sub connection, which close() must end
    await server.pause()
    try {
      for (const call of [() => cache.clear(), () => cache.deleteByPattern('*')]) {
        const started = performance.now()
        const error = await call().catch((e: unknown) => e)
        expect(performance.now() - started).toBeLessThan(200 + 300)
        expect(isRpError(error)).toBe(true)
      }
      const started = performance.now()
      await cache.close()
      expect(performance.now() - started).toBeLessThan(2_500)
    } finally {
      await server.resume()
      plain.disconnect()
    }
  })

  it('getOrSet honours hardTimeoutMs when the pub/sub connection cannot be made', async () => {
    const own = await startRedis({ ownServer: true })
    const plain = new Redis(own.url).on('error', () => {})
    const admin = new Redis(own.url)
    const ns = 'hard'
    const cache = new Cache({ redis: plain, namespace: ns, ttlMs: 60_000 })
    try {
      await plain.ping()
      await admin.ping()
      // Someone else holds the loader lease, so this caller must wait for an announcement...
      await admin.set(new CacheKeys(ns, 1).lease('k'), 'other', 'PX', 60_000)
      // ...and no new connection (the subscriber) can be opened.
      await admin.config('SET', 'maxclients', '2')
      const started = performance.now()
      const error = await cache.getOrSet('k', () => 'v', { hardTimeoutMs: 500 }).catch((e: unknown) => e)
      expect(error).toBeInstanceOf(TimeoutError)
      expect(performance.now() - started).toBeLessThan(500 + 200)
    } finally {
      await cache.close()
      plain.disconnect()
      admin.disconnect()
      await own.stop()
    }
  })
})

describe('at maxmemory (noeviction)', () => {
  it('set() is refused with RedisOutOfMemoryError and memory does not grow; reads still hit', async () => {
    const own = await startRedis({
      ownServer: true,
      args: ['--maxmemory', '2mb', '--maxmemory-policy', 'noeviction'],
    })
    const client = new Redis(own.url)
    const cache = new Cache({ redis: client, namespace: 'oom', ttlMs: 60_000 })
    try {
      await cache.set('kept', 'v')
      await fillToMaxmemory(client)
      const used = Number(parseInfo(await client.info('memory')).used_memory)
      for (let i = 0; i < 50; i++)
        await expect(cache.set(`k${i}`, 'x'.repeat(10_000), { tags: [`t${i}`] })).rejects.toBeInstanceOf(
          RedisOutOfMemoryError,
        )
      expect(Number(parseInfo(await client.info('memory')).used_memory)).toBeLessThan(used + 100_000)
      expect(await cache.get('kept')).toBe('v')
      expect(await cache.getOrSet('kept', () => 'factory')).toBe('v')
    } finally {
      await cache.close()
      client.disconnect()
      await own.stop()
    }
  })
})

describe('when Redis is down', () => {
  it('misses at once while the client reconnects, instead of waiting out timeoutMs in the offline queue', async () => {
    const own = await startRedis({ ownServer: true })
    const client = new Redis(own.url, { retryStrategy: () => 200 }).on('error', () => {})
    const cache = new Cache({ redis: client, namespace: 'down', ttlMs: 60_000, timeoutMs: 2_000 })
    try {
      await cache.set('k', 'v')
      await own.kill()
      const deadline = Date.now() + 5_000
      while (client.status === 'ready' && Date.now() < deadline) await new Promise((r) => setTimeout(r, 5))
      const started = performance.now()
      expect(await cache.get('k')).toBeUndefined()
      expect(performance.now() - started).toBeLessThan(100)
      expect(await cache.getOrSet('k', async () => 'from factory')).toBe('from factory')
    } finally {
      await cache.close()
      client.disconnect()
      await own.stop()
    }
  })
})
