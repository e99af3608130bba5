import { Cluster, Redis } from 'ioredis'
import { describe, expect, inject, it } from 'vitest'
import { assertUsableClient, masters } from './client.js'
import { InvalidArgumentError, isRpError, UnsupportedClientError } from './errors.js'
import { health } from './health.js'
import { memory } from './memory.js'
import { deleteByPattern, scanKeys } from './scan.js'
import { shutdown } from './shutdown.js'

describe('assertUsableClient', () => {
  it('names a missing client', () => {
    expect(() => assertUsableClient(undefined)).toThrow(InvalidArgumentError)
    expect(() => assertUsableClient(null)).toThrow(/redis: an ioredis Redis or Cluster client is required/)
    // An object that is not a client is named as such, not left to fail later as a raw TypeError.
    expect(() => assertUsableClient({} as never)).toThrow(InvalidArgumentError)
    expect(() => assertUsableClient({ options: {} } as never)).toThrow(InvalidArgumentError)
  })

  it('masters() on a cluster that never becomes ready rejects with an @rp error within its bound', async () => {
    const cluster = new Cluster([{ host: '127.0.0.1', port: 1 }], { clusterRetryStrategy: () => 50 })
    cluster.on('error', () => {})
    const started = performance.now()
    const error = await masters(cluster, 300).catch((e: unknown) => e)
    expect(isRpError(error)).toBe(true)
    expect(performance.now() - started).toBeLessThan(1_000)
    cluster.disconnect()
  })

  it('rejects a standalone client with keyPrefix, naming the fix', () => {
    const redis = new Redis(inject('rpRedisUrl'), { keyPrefix: 'app:', lazyConnect: true })
    expect(() => assertUsableClient(redis)).toThrow(UnsupportedClientError)
    expect(() => assertUsableClient(redis)).toThrow(/keyPrefix 'app:'.*Remove keyPrefix/)
    redis.disconnect()
  })

  it('rejects a cluster client with keyPrefix', () => {
    const cluster = new Cluster(inject('rpClusterNodes'), {
      redisOptions: { keyPrefix: 'app:' },
      lazyConnect: true,
    })
    expect(() => assertUsableClient(cluster)).toThrow(UnsupportedClientError)
    cluster.disconnect()
  })

  it('rejects a client with stringNumbers, standalone or cluster, naming the fix', () => {
    const redis = new Redis(inject('rpRedisUrl'), { stringNumbers: true, lazyConnect: true })
    expect(() => assertUsableClient(redis)).toThrow(UnsupportedClientError)
    expect(() => assertUsableClient(redis)).toThrow(
      /stringNumbers: true.*duplicate\(\{ stringNumbers: false \}\)/,
    )
    // The fix the message names gives a client @rp accepts.
    const fixed = redis.duplicate({ stringNumbers: false, lazyConnect: true })
    expect(assertUsableClient(fixed)).toBe(fixed)
    const cluster = new Cluster(inject('rpClusterNodes'), {
      redisOptions: { stringNumbers: true },
      lazyConnect: true,
    })
    expect(() => assertUsableClient(cluster)).toThrow(UnsupportedClientError)
    for (const c of [redis, fixed, cluster]) c.disconnect()
  })

  it('finds the options on a cluster wherever ioredis takes them: a startup node, or keyPrefix at the top level', () => {
    const nodes = inject('rpClusterNodes') as Array<{ host: string; port: number }>
    const builds = [
      // ioredis keeps a startup node's options per host:port and applies them to its connections.
      new Cluster(
        nodes.map((n) => ({ ...n, stringNumbers: true })),
        { lazyConnect: true },
      ),
      new Cluster(
        nodes.map((n) => ({ ...n, keyPrefix: 'app:' })),
        { lazyConnect: true },
      ),
      new Cluster(nodes, { lazyConnect: true, keyPrefix: 'app:' }),
    ]
    for (const cluster of builds) {
      expect(() => assertUsableClient(cluster)).toThrow(UnsupportedClientError)
      cluster.disconnect()
    }
  })

  it('lets the helpers that read no integer reply use a stringNumbers client', async () => {
    const redis = new Redis(inject('rpRedisUrl'), { stringNumbers: true })
    const prefix = `sn${Date.now().toString(36)}`
    await redis.set(`${prefix}:a`, '1')
    await redis.set(`${prefix}:b`, '2')
    expect((await health(redis)).ok).toBe(true)
    expect((await memory(redis)).usedBytes).toBeGreaterThan(0)
    const found: string[] = []
    for await (const batch of scanKeys(redis, { match: `${prefix}:*` })) found.push(...batch)
    expect(found.sort()).toEqual([`${prefix}:a`, `${prefix}:b`])
    // A number, not the strings UNLINK's counts arrive as ('0' + '2' would be '02').
    expect(await deleteByPattern(redis, { match: `${prefix}:*` })).toBe(2)
    await shutdown([redis])
    expect(redis.status).toBe('end')
  })

  it('is enforced by the scan helpers before any command is sent', async () => {
    const redis = new Redis(inject('rpRedisUrl'), { keyPrefix: 'app:', lazyConnect: true })
    await expect(scanKeys(redis, { match: '*' }).next()).rejects.toBeInstanceOf(UnsupportedClientError)
    expect(redis.status).toBe('wait')
    redis.disconnect()
  })

  it('accepts a plain client', () => {
    const redis = new Redis(inject('rpRedisUrl'), { lazyConnect: true })
    expect(assertUsableClient(redis)).toBe(redis)
    redis.disconnect()
  })
})
