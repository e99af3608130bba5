import { startRedis } from '@rp/testing'
import { eventually } from '@rp/testing/vitest'
import { Redis } from 'ioredis'
import { expect, inject, it } from 'vitest'
import { installShutdownHandlers, shutdown } from './shutdown.js'

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

it('on a signal runs beforeShutdown, closes the clients, runs afterShutdown, and never rejects', async () => {
  const redis = new Redis(inject('rpRedisUrl'))
  await redis.ping()
  const steps: string[] = []
  const unhandled: unknown[] = []
  const onUnhandled = (reason: unknown) => unhandled.push(reason)
  process.on('unhandledRejection', onUnhandled)
  const uninstall = installShutdownHandlers(redis, {
    signals: ['SIGUSR2'],
    timeoutMs: 1_000,
    exit: false,
    beforeShutdown: () => {
      steps.push(`before:${redis.status}`)
    },
    afterShutdown: () => {
      steps.push(`after:${redis.status}`)
    },
  })
  try {
    process.emit('SIGUSR2', 'SIGUSR2')
    await eventually(() => steps.length === 2, 5_000, 'afterShutdown')
    expect(steps).toEqual(['before:ready', 'after:end'])
    await new Promise((r) => setTimeout(r, 50))
    expect(unhandled).toEqual([])
  } finally {
    uninstall()
    process.off('unhandledRejection', onUnhandled)
  }
})
