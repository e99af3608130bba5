import { startCluster, startRedis } from '@rp/testing'
import { describeEachTarget, eventually, uniquePrefix } from '@rp/testing/vitest'
import { Cluster, Redis } from 'ioredis'
import { afterAll, describe, expect, it } from 'vitest'
import { Cache } from './cache.js'
import { CacheKeys } from './cache-keys.js'
import { storedEntry } from './entry.test-helpers.js'

describeEachTarget('L1 with tracking', (target) => {
  const redis = target.client()
  const other = target.client()
  const caches: Cache[] = []
  afterAll(() => Promise.all(caches.map((c) => c.close())))

  it('serves hits from L1 and evicts them within 100 ms when another client writes', async () => {
    const namespace = uniquePrefix('trk')
    const cache = new Cache({
      redis,
      namespace,
      ttlMs: 60_000,
      l1: { maxEntries: 100, ttlMs: 60_000 },
      tracking: true,
    })
    caches.push(cache)
    await cache.ready()
    await cache.set('k', 'v1')
    await eventually(async () => (await cache.get('k')) === 'v1', 1_000, 'first read')
    const before = cache.stats().l1Hits
    expect(await cache.get('k')).toBe('v1')
    expect(cache.stats().l1Hits).toBe(before + 1)

    // Another client (it could be redis-cli) rewrites the entry behind the cache's back.
    const entry = new CacheKeys(namespace, 1).entry('k')
    const changedAt = performance.now()
    await other.set(entry, storedEntry(JSON.stringify('v2')), 'PX', 60_000)
    await eventually(async () => (await cache.get('k')) === 'v2', 100, 'L1 eviction by tracking')
    expect(performance.now() - changedAt).toBeLessThan(100)
  })
})

describe('L1 across a reconnect', () => {
  it('flushes L1 and re-arms tracking after the server is killed and restarted', async () => {
    const server = await startRedis({ ownServer: true })
    const redis = new Redis(server.url, { maxRetriesPerRequest: 1, retryStrategy: () => 50 }).on(
      'error',
      () => {},
    )
    const other = new Redis(server.url, { maxRetriesPerRequest: 1, retryStrategy: () => 50 }).on(
      'error',
      () => {},
    )
    const cache = new Cache({
      redis,
      namespace: 'rc',
      ttlMs: 60_000,
      l1: { maxEntries: 100, ttlMs: 60_000 },
      tracking: true,
    })
    try {
      await cache.ready()
      await cache.set('k', 'before')
      await eventually(async () => (await cache.get('k')) === 'before', 1_000, 'cached')
      await server.kill()
      await server.restart()
      await eventually(() => redis.status === 'ready' && other.status === 'ready', 10_000, 'clients back')
      // The restarted server lost the data; a stale L1 would still answer "before".
      await eventually(async () => (await cache.get('k')) === undefined, 5_000, 'L1 flushed')
      await cache.set('k', 'after')
      await eventually(async () => (await cache.get('k')) === 'after', 1_000, 'cached again')
      await other.set(
        new CacheKeys('rc', 1).entry('k'),
        storedEntry(JSON.stringify('external')),
        'PX',
        60_000,
      )
      await eventually(async () => (await cache.get('k')) === 'external', 200, 'tracking re-armed')
    } finally {
      await cache.close()
      redis.disconnect()
      other.disconnect()
      await server.stop()
    }
  })
})

describe('L1 across a cluster failover', () => {
  it('follows the promoted replica: tracking re-arms and L1 is trusted again', async () => {
    const cluster = await startCluster({ masters: 3, replicas: 1 })
    const redis = new Cluster([...cluster.nodes], {
      redisOptions: { maxRetriesPerRequest: 1 },
      clusterRetryStrategy: () => 100,
    }).on('error', () => {})
    const other = new Cluster([...cluster.nodes], { redisOptions: { maxRetriesPerRequest: 1 } }).on(
      'error',
      () => {},
    )
    const cache = new Cache({
      redis,
      namespace: 'fo',
      ttlMs: 60_000,
      l1: { maxEntries: 10, ttlMs: 60_000 },
      tracking: true,
    })
    try {
      await cache.ready()
      await cache.set('k', 'v1')
      await cluster.waitForReplication()
      // Kill the master that owns the namespace's slot.
      const slot = Number(await redis.cluster('KEYSLOT', new CacheKeys('fo', 1).entry('k')))
      await cluster.killMaster(slot)
      await cluster.waitForFailover()
      await eventually(
        async () => {
          await cache.get('k').catch(() => undefined)
          const before = cache.stats().l1Hits
          await cache.get('k')
          return cache.stats().l1Hits > before
        },
        20_000,
        'L1 in use again after the failover',
      )
      await other.set(new CacheKeys('fo', 1).entry('k'), storedEntry(JSON.stringify('v2')), 'PX', 60_000)
      await eventually(async () => (await cache.get('k')) === 'v2', 500, 'eviction through the new master')
    } finally {
      await cache.close()
      redis.disconnect()
      other.disconnect()
      await cluster.stop()
    }
  }, 60_000)
})
