import { startRedis } from '@rp/testing'
import { describeEachTarget } from '@rp/testing/vitest'
import { Redis } from 'ioredis'
import { describe, expect, it } from 'vitest'
import { RpError, TimeoutError } from './errors.js'
import { health } from './health.js'
import { memory, memoryWarnings } from './memory.js'

describeEachTarget('health and memory', (target) => {
  it('reports a healthy server with role and version', async () => {
    const report = await health(target.client())
    expect(report.ok).toBe(true)
    expect(report.role).toBe(target.kind === 'cluster' ? 'cluster' : 'master')
    expect(report.version).toMatch(/^\d+\.\d+\.\d+/)
    expect(report.latencyMs).toBeGreaterThanOrEqual(0)
  })

  it('sums memory over every master and warns about a missing maxmemory', async () => {
    const redis = target.client()
    const report = await memory(redis)
    expect(report.usedBytes).toBeGreaterThan(0)
    expect(report.maxmemoryBytes).toBe(0)
    expect(report.warnings.filter((w) => w.includes('no maxmemory')).length).toBe(
      target.kind === 'cluster' ? 3 : 1,
    )
  })
})

describe('monitoring on a server of its own', () => {
  it('memory() with a wrong password rejects with a typed error, the reply as cause', async () => {
    const server = await startRedis({ ownServer: true })
    const admin = new Redis(server.url)
    await admin.config('SET', 'requirepass', 'right')
    admin.disconnect()
    const redis = new Redis(server.url, { password: 'wrong', lazyConnect: true, maxRetriesPerRequest: 0 })
    redis.on('error', () => {})
    try {
      const error = await memory(redis, { timeoutMs: 2_000 }).catch((e: unknown) => e)
      expect(error).toBeInstanceOf(RpError)
      expect((error as RpError).cause).toBeDefined()
    } finally {
      redis.disconnect()
      await server.stop()
    }
  })

  it('health() and memory() settle within timeoutMs while the server is paused', async () => {
    const server = await startRedis({ ownServer: true })
    const redis = new Redis(server.url)
    redis.on('error', () => {})
    try {
      await redis.ping()
      await server.pause()
      const started = performance.now()
      const [report, error] = await Promise.all([
        health(redis, { timeoutMs: 300 }),
        memory(redis, { timeoutMs: 300 }).catch((e: unknown) => e),
      ])
      expect(performance.now() - started).toBeLessThan(1_000)
      expect(report.ok).toBe(false)
      expect(error).toBeInstanceOf(TimeoutError)
    } finally {
      await server.resume()
      redis.disconnect()
      await server.stop()
    }
  })

  it('warns about noeviction while keys carry TTLs, and not before', async () => {
    const server = await startRedis({
      ownServer: true,
      args: ['--maxmemory', '64mb', '--maxmemory-policy', 'noeviction'],
    })
    const redis = new Redis(server.url)
    try {
      let report = await memory(redis)
      expect(report.maxmemoryBytes).toBe(64 * 1024 * 1024)
      expect(report.policy).toBe('noeviction')
      expect(report.warnings).toEqual([])
      await redis.set('ttl-key', '1', 'PX', 60_000)
      report = await memory(redis)
      expect(report.warnings).toHaveLength(1)
      expect(report.warnings[0]).toMatch(/noeviction while 1 keys carry TTLs/)
    } finally {
      redis.disconnect()
      await server.stop()
    }
  })

  it('answers ok:false within the timeout when the server is paused', async () => {
    const server = await startRedis({ ownServer: true })
    const redis = new Redis(server.url).on('error', () => {})
    try {
      await redis.ping()
      await server.pause()
      const started = performance.now()
      const report = await health(redis, { timeoutMs: 300 })
      expect(performance.now() - started).toBeLessThan(1_000)
      expect(report.ok).toBe(false)
      expect(report.error).toMatch(/300 ms/)
      await server.resume()
      expect((await health(redis)).ok).toBe(true)
    } finally {
      redis.disconnect()
      await server.stop()
    }
  })

  it('warns about fragmentation only with a heap large enough to matter', () => {
    const base = { usedBytes: 1, maxmemoryBytes: 1, policy: 'allkeys-lru', keysWithTtl: 0 }
    expect(memoryWarnings({ ...base, fragmentationRatio: 4, rssBytes: 8 * 1024 * 1024 })).toEqual([])
    expect(memoryWarnings({ ...base, fragmentationRatio: 1.8, rssBytes: 512 * 1024 * 1024 })[0]).toMatch(
      /fragmentation ratio is 1\.80/,
    )
  })
})
