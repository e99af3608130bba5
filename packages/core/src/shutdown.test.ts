import { startRedis } from '@rp/testing'
import { Redis } from 'ioredis'
import { expect, inject, it } from 'vitest'
import { shutdown } from './shutdown.js'

it('quits cleanly and reports already-closed clients', async () => {
  const redis = new Redis(inject('rpRedisUrl'))
  await redis.ping()
  expect(await shutdown(redis)).toEqual(['quit'])
  expect(redis.status).toBe('end')
  expect(await shutdown([redis])).toEqual(['already-closed'])
})

it('disconnects once the timeout passes when QUIT gets no answer', async () => {
  const server = await startRedis({ ownServer: true })
  const redis = new Redis(server.url, { retryStrategy: () => null }).on('error', () => {})
  try {
    await redis.ping()
    await server.pause()
    const started = performance.now()
    expect(await shutdown(redis, { timeoutMs: 200 })).toEqual(['disconnected'])
    expect(performance.now() - started).toBeLessThan(1_000)
    expect(['end', 'close']).toContain(redis.status)
  } finally {
    await server.stop()
  }
})
