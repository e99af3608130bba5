import { RedisOutOfMemoryError, RedisUnavailableError, TimeoutError } from '@rp/core'
import { type RedisServer, startRedis } from '@rp/testing'
import { eventually, fillToMaxmemory } from '@rp/testing/vitest'
import { Redis } from 'ioredis'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { Leaderboard } from './index.js'

let server: RedisServer
let redis: Redis
const unhandled: unknown[] = []
const onUnhandled = (reason: unknown) => unhandled.push(reason)

beforeAll(async () => {
  server = await startRedis({ ownServer: true })
  redis = new Redis(server.url, { maxRetriesPerRequest: 1, retryStrategy: () => 50 }).on('error', () => {})
  process.on('unhandledRejection', onUnhandled)
})
afterAll(async () => {
  process.off('unhandledRejection', onUnhandled)
  redis.disconnect()
  await server.stop()
})

describe('Leaderboard when Redis fails', () => {
  it('a submit against a killed Redis rejects with a typed error within timeoutMs, and works after a restart', async () => {
    const board = new Leaderboard({ redis, name: 'fault', timeoutMs: 300 })
    await board.submit('ana', 1)
    const load = Array.from({ length: 20 }, (_, i) => board.submit(`m${i}`, i))
    await server.kill()
    await Promise.allSettled(load)
    for (const call of [() => board.submit('bo', 2), () => board.top(10), () => board.entry('ana')]) {
      const started = performance.now()
      const error = await call().then(
        () => null,
        (e: unknown) => e,
      )
      expect(performance.now() - started).toBeLessThan(700)
      expect(error instanceof RedisUnavailableError || error instanceof TimeoutError).toBe(true)
    }
    await server.restart()
    await eventually(() => redis.status === 'ready')
    expect(await board.submit('cy', 3)).toMatchObject({ rank: 1, changed: true })
    expect(unhandled).toEqual([])
  })

  it('answers within timeoutMs while Redis is paused', async () => {
    const board = new Leaderboard({ redis, name: 'pause', timeoutMs: 200 })
    await board.submit('ana', 1)
    await server.pause()
    try {
      const started = performance.now()
      await expect(board.submit('bo', 2)).rejects.toBeInstanceOf(TimeoutError)
      expect(performance.now() - started).toBeLessThan(600)
    } finally {
      await server.resume()
    }
    expect(unhandled).toEqual([])
  })
})

describe('Leaderboard at maxmemory', () => {
  it('refuses submits whole and keeps serving reads and removes', async () => {
    const full = await startRedis({
      ownServer: true,
      args: ['--maxmemory', '2mb', '--maxmemory-policy', 'noeviction'],
    })
    const client = new Redis(full.url, { maxRetriesPerRequest: 1 }).on('error', () => {})
    try {
      const board = new Leaderboard({ redis: client, name: 'oom', ranking: 'dense' })
      await board.submitMany([
        { member: 'a', score: 3 },
        { member: 'b', score: 2 },
      ])
      await fillToMaxmemory(client)
      // Make sure the server is over its limit, not just under it with room for a small write.
      const used = Number(/used_memory:(\d+)/.exec(await client.info('memory'))![1])
      await client.config('SET', 'maxmemory', String(used - 100_000))
      await expect(board.submit('c', 1)).rejects.toBeInstanceOf(RedisOutOfMemoryError)
      await expect(board.submitMany([{ member: 'd', score: 1 }])).rejects.toBeInstanceOf(
        RedisOutOfMemoryError,
      )
      expect(await board.top(10)).toEqual([
        { member: 'a', score: 3, rank: 1 },
        { member: 'b', score: 2, rank: 2 },
      ])
      expect(await board.entry('b')).toMatchObject({ rank: 2, percentile: 50 })
      expect(await board.remove('a')).toBe(true)
      expect(await board.rank('b')).toBe(1)
    } finally {
      client.disconnect()
      await full.stop()
    }
  })
})

describe('Leaderboard export', () => {
  it('fails, rather than ending early, when the snapshot expires under a slow consumer', async () => {
    const board = new Leaderboard({ redis, name: 'slow-export', update: 'replace' })
    await board.submitMany(Array.from({ length: 50 }, (_, i) => ({ member: `m${i}`, score: i })))
    const seen: number[] = []
    await expect(
      (async () => {
        for await (const batch of board.export({ batchSize: 10, snapshotTtlMs: 100 })) {
          seen.push(...batch.map((e) => e.score))
          await new Promise((r) => setTimeout(r, 250))
        }
      })(),
    ).rejects.toMatchObject({ code: 'RP_EXPORT_EXPIRED' })
    expect(seen).toHaveLength(10)
  })
})
