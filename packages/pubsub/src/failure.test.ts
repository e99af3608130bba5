import { RedisUnavailableError, TimeoutError } from '@rp/core'
import { type RedisServer, startRedis } from '@rp/testing'
import { eventually } from '@rp/testing/vitest'
import { Redis } from 'ioredis'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { PubSub } from './index.js'

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

type Events = { ticks: { n: number } }

describe('PubSub when the connection or Redis fails', () => {
  it('after Redis is killed and restarted: publish fails fast meanwhile, resubscribed fires, messages flow again', async () => {
    const bus = new PubSub<Events>({ redis, prefix: 'kill', timeoutMs: 300 })
    const got: number[] = []
    const events: string[] = []
    bus
      .on('disconnected', () => events.push('disconnected'))
      .on('resubscribed', () => events.push('resubscribed'))
    await bus.subscribe('ticks', (m) => {
      got.push(m.n)
    })
    await bus.publish('ticks', { n: 1 })
    await eventually(() => got.length === 1)
    await server.kill()
    const started = performance.now()
    const error = await bus.publish('ticks', { n: 2 }).catch((e: unknown) => e)
    expect(performance.now() - started).toBeLessThan(700)
    expect(error instanceof RedisUnavailableError || error instanceof TimeoutError).toBe(true)
    await server.restart()
    await eventually(() => events.includes('resubscribed'), 15_000, 'resubscribed')
    expect(events[0]).toBe('disconnected')
    await eventually(async () => (await bus.publish('ticks', { n: 3 }).catch(() => -1)) >= 0)
    await eventually(() => got.includes(3))
    await bus.close()
    expect(unhandled).toEqual([])
  })

  it('renews the subscriptions again when the first renewal after a restart fails', async () => {
    // The subscriber reconnects at once; the bus's command client only after 2 s, so the renewal on
    // the subscriber's `ready` is refused (the client is reconnecting) and must be tried again.
    const main = new Redis(server.url, { maxRetriesPerRequest: 1, retryStrategy: () => 50 }).on(
      'error',
      () => {},
    )
    const bus = new PubSub<Events>({ redis: main, prefix: 'renew', timeoutMs: 300 })
    const events: string[] = []
    bus
      .on('disconnected', () => events.push('disconnected'))
      .on('resubscribed', () => events.push('resubscribed'))
    const got: number[] = []
    await bus.subscribe('ticks', (m) => {
      got.push(m.n)
    })
    main.options.retryStrategy = () => 2_000
    try {
      await server.kill()
      await server.restart()
      await eventually(() => events.includes('resubscribed'), 10_000, 'resubscribed')
      expect(events.filter((e) => e === 'disconnected').length).toBeGreaterThanOrEqual(2)
      await eventually(async () => (await bus.publish('ticks', { n: 7 }).catch(() => -1)) >= 0)
      await eventually(() => got.includes(7))
    } finally {
      await bus.close()
      main.disconnect()
    }
    expect(unhandled).toEqual([])
  })

  it('a sequenced subscriber whose connection drops reports what was published meanwhile as a gap', async () => {
    const bus = new PubSub<Events>({ redis, prefix: 'gap', sequenced: true })
    const publisher = new PubSub<Events>({ redis, prefix: 'gap', sequenced: true })
    const gaps: Array<{ missed: number }> = []
    const got: number[] = []
    let resubscribed = 0
    bus.on('gap', (g) => gaps.push(g)).on('resubscribed', () => resubscribed++)
    await bus.subscribe('ticks', (m) => {
      got.push(m.n)
    })
    await publisher.publish('ticks', { n: 1 })
    await eventually(() => got.length === 1)
    // Drop only the subscriber's connection, and publish while it reconnects.
    const admin = new Redis(server.url)
    await admin.client('KILL', 'TYPE', 'pubsub')
    for (let n = 2; n <= 4; n++) await publisher.publish('ticks', { n })
    await eventually(() => resubscribed === 1, 15_000, 'resubscribed')
    await eventually(() => gaps.length === 1, 5_000, 'the gap')
    await publisher.publish('ticks', { n: 5 })
    await eventually(() => got.includes(5))
    // Three were published while it was away; whichever of them arrived is not counted missing.
    const arrived = got.filter((n) => n >= 2 && n <= 4).length
    expect(gaps[0]!.missed + arrived).toBe(3)
    admin.disconnect()
    await bus.close()
    await publisher.close()
    expect(unhandled).toEqual([])
  })
})
