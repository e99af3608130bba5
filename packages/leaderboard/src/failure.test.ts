import { RedisUnavailableError, TimeoutError } from '@rp/core'
import { type RedisServer, startRedis } from '@rp/testing'
import { eventually } from '@rp/testing/vitest'
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
