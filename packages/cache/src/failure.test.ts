import { parseInfo } from '@rp/core'
import { type RedisServer, startRedis } from '@rp/testing'
import { Redis } from 'ioredis'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { Cache } from './cache.js'

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
    // Inside the script: TIME, HMGET, and one HGET per tag.
    expect(
      Object.keys(calls)
        .filter((c) => c !== 'info')
        .sort(),
    ).toEqual(['config|resetstat', 'evalsha', 'hget', 'hmget', 'time'])
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
    expect(calls.evalsha).toBe(1)
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
