import { Cluster, Redis } from 'ioredis'
import { describe, expect, inject, it } from 'vitest'
import { assertUsableClient, masters } from './client.js'
import { InvalidArgumentError, isRpError, UnsupportedClientError } from './errors.js'
import { scanKeys } from './scan.js'

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
