import { Cluster, Redis } from 'ioredis'
import { describe, expect, inject, it } from 'vitest'
import { blockingClient, createRedis, fullJitterBackoff, resolveConnection } from './connection.js'
import { InvalidArgumentError } from './errors.js'
import { shutdown } from './shutdown.js'

describe('resolveConnection', () => {
  it('reads a TLS URL with credentials and db', () => {
    const c = resolveConnection({ env: { REDIS_URL: 'rediss://me:p%40ss@cache.example:6380/3' } })
    expect(c).toMatchObject({
      mode: 'standalone',
      host: 'cache.example',
      port: 6380,
      username: 'me',
      password: 'p@ss',
      db: 3,
      tls: {},
    })
  })

  it('lets explicit options and REDIS_* variables override the URL', () => {
    const c = resolveConnection({
      port: 7000,
      env: { REDIS_URL: 'redis://a:1', REDIS_HOST: 'b', REDIS_DB: '2', REDIS_TLS: 'true' },
    })
    expect(c).toMatchObject({ host: 'b', port: 7000, db: 2, tls: {} })
  })

  it('selects Sentinel and Cluster modes from the environment', () => {
    expect(
      resolveConnection({ env: { REDIS_SENTINELS: 's1:26379,s2:26380', REDIS_SENTINEL_NAME: 'mymaster' } }),
    ).toMatchObject({
      mode: 'sentinel',
      sentinels: [
        { host: 's1', port: 26379 },
        { host: 's2', port: 26380 },
      ],
      sentinelName: 'mymaster',
    })
    expect(resolveConnection({ env: { REDIS_CLUSTER_NODES: 'n1:7000,n2' } }).clusterNodes).toEqual([
      { host: 'n1', port: 7000 },
      { host: 'n2', port: 6379 },
    ])
  })

  it('rejects bad settings with the variable name', () => {
    expect(() => resolveConnection({ env: { REDIS_PORT: 'abc' } })).toThrow(/REDIS_PORT/)
    expect(() => resolveConnection({ env: { REDIS_URL: 'http://x' } })).toThrow(InvalidArgumentError)
    expect(() => resolveConnection({ env: { REDIS_SENTINELS: 's:1' } })).toThrow(/sentinelName/)
    expect(() => resolveConnection({ env: { REDIS_TLS: 'maybe' } })).toThrow(/REDIS_TLS/)
  })
})

it('full-jitter backoff stays within [0, min(cap, base * 2^n))', () => {
  const backoff = fullJitterBackoff(100, 3_000)
  for (let attempt = 0; attempt < 40; attempt++) {
    const delay = backoff(attempt)
    expect(delay).toBeGreaterThanOrEqual(0)
    expect(delay).toBeLessThan(Math.min(3_000, 100 * 2 ** attempt))
  }
})

describe('createRedis', () => {
  it('connects to a standalone server from REDIS_URL and logs lifecycle events', async () => {
    const events: string[] = []
    const log = (o: object) => events.push((o as { event: string }).event)
    const redis = createRedis({
      env: { REDIS_URL: inject('rpRedisUrl') },
      logger: { debug: log, info: log, warn: log, error: log },
    })
    expect(redis).toBeInstanceOf(Redis)
    expect(await redis.ping()).toBe('PONG')
    await shutdown(redis)
    expect(events).toEqual(expect.arrayContaining(['connect', 'ready', 'end']))
  })

  it('connects to a cluster from REDIS_CLUSTER_NODES', async () => {
    const nodes = inject('rpClusterNodes')
    const redis = createRedis({
      env: { REDIS_CLUSTER_NODES: nodes.map((n) => `${n.host}:${n.port}`).join(',') },
    })
    expect(redis).toBeInstanceOf(Cluster)
    await redis.set('conn:{x}', '1', 'PX', 1_000)
    expect(await redis.get('conn:{x}')).toBe('1')
    await shutdown(redis)
  })

  it('rejects commands instead of queueing forever when Redis is unreachable', async () => {
    const redis = createRedis({ port: 1, maxRetriesPerRequest: 1, reconnect: { baseMs: 10, capMs: 20 } })
    const started = performance.now()
    await expect(redis.get('x')).rejects.toThrow()
    expect(performance.now() - started).toBeLessThan(3_000)
    redis.disconnect()
  })
})

describe('createRedis hardening', () => {
  it('a logger that throws cannot crash the process from an ioredis event', async () => {
    const uncaught: unknown[] = []
    const onUncaught = (e: unknown) => uncaught.push(e)
    process.on('uncaughtException', onUncaught)
    const throwing = () => {
      throw new Error('logger broke')
    }
    const redis = createRedis({
      url: inject('rpRedisUrl'),
      logger: { debug: throwing, info: throwing, warn: throwing, error: throwing },
    })
    try {
      await redis.ping()
      await new Promise((r) => setTimeout(r, 20))
      expect(uncaught).toEqual([])
    } finally {
      process.off('uncaughtException', onUncaught)
      await shutdown(redis)
    }
  })

  it('blockingClient runs a block longer than commandTimeoutMs, which the client itself cuts', async () => {
    const redis = createRedis({ url: inject('rpRedisUrl'), commandTimeoutMs: 200 })
    const blocking = blockingClient(redis)
    try {
      await expect(redis.blpop('rp:never:{x}', 1)).rejects.toThrow(/timed out/)
      expect(await blocking.blpop('rp:never:{x}', 1)).toBeNull()
    } finally {
      await shutdown([redis, blocking])
    }
  })
})
