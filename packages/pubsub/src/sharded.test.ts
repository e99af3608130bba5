import { keyspace } from '@rp/core'
import { startCluster } from '@rp/testing'
import { eventually, uniquePrefix } from '@rp/testing/vitest'
import { Cluster } from 'ioredis'
import { describe, expect, it } from 'vitest'
import { PubSub } from './pubsub.js'

type Events = { news: { n: number } }

describe('PubSub sharded (SPUBLISH / SSUBSCRIBE) on a cluster', () => {
  it('delivers, and keeps delivering after the master of the channel is killed and its replica takes over', async () => {
    const cluster = await startCluster({ masters: 3, replicas: 1 })
    const client = () =>
      new Cluster([...cluster.nodes], {
        redisOptions: { maxRetriesPerRequest: 1 },
        clusterRetryStrategy: () => 100,
      }).on('error', () => {})
    const publisherClient = client()
    const subscriberClient = client()
    const unhandled: unknown[] = []
    const onUnhandled = (reason: unknown) => unhandled.push(reason)
    process.on('unhandledRejection', onUnhandled)
    const prefix = uniquePrefix('sharded')
    const publisher = new PubSub<Events>({ redis: publisherClient, prefix, sharded: true, timeoutMs: 500 })
    const subscriber = new PubSub<Events>({ redis: subscriberClient, prefix, sharded: true, timeoutMs: 500 })
    const events: string[] = []
    subscriber
      .on('disconnected', () => events.push('disconnected'))
      .on('resubscribed', () => events.push('resubscribed'))
    try {
      const got = new Set<number>()
      await subscriber.subscribe('news', (m) => {
        got.add(m.n)
      })
      await publisher.publish('news', { n: 1 })
      await eventually(() => got.has(1), 5_000, 'the first message')

      await cluster.waitForReplication()
      const slot = Number(await publisherClient.cluster('KEYSLOT', keyspace(prefix).channel('news')))
      await cluster.killMaster(slot)
      await cluster.waitForFailover()
      // Publish until one arrives: the subscriber re-subscribes on the promoted replica by itself.
      let n = 1
      await eventually(
        async () => {
          n++
          await publisher.publish('news', { n }).catch(() => -1)
          await new Promise((r) => setTimeout(r, 100))
          return got.has(n)
        },
        30_000,
        'a message after the failover',
      )
      expect(got.has(1)).toBe(true)
      await eventually(() => events.includes('resubscribed'), 10_000, 'resubscribed')
      expect(events.indexOf('disconnected')).toBeLessThan(events.indexOf('resubscribed'))
      expect(events.indexOf('disconnected')).toBeGreaterThanOrEqual(0)
      // Closing reports the subscriber's end once, and nothing after.
      const before = events.length
      await subscriber.close()
      await new Promise((r) => setTimeout(r, 1_200))
      expect(events.slice(before).filter((e) => e === 'disconnected').length).toBeLessThanOrEqual(1)
      expect(events.slice(before)).not.toContain('resubscribed')
      expect(unhandled).toEqual([])
    } finally {
      process.off('unhandledRejection', onUnhandled)
      await Promise.all([publisher.close(), subscriber.close()]).catch(() => {})
      publisherClient.disconnect()
      subscriberClient.disconnect()
      await cluster.stop()
    }
  }, 90_000)
})

describe('PubSub sharded across a slot migration', () => {
  it('keeps delivering after the slot of the channel moves to another master', async () => {
    const cluster = await startCluster({ masters: 3, replicas: 0 })
    const client = () =>
      new Cluster([...cluster.nodes], {
        redisOptions: { maxRetriesPerRequest: 1 },
        clusterRetryStrategy: () => 100,
      }).on('error', () => {})
    const publisherClient = client()
    const subscriberClient = client()
    const unhandled: unknown[] = []
    const onUnhandled = (reason: unknown) => unhandled.push(reason)
    process.on('unhandledRejection', onUnhandled)
    const prefix = uniquePrefix('migrate')
    const publisher = new PubSub<Events>({ redis: publisherClient, prefix, sharded: true, timeoutMs: 500 })
    const subscriber = new PubSub<Events>({ redis: subscriberClient, prefix, sharded: true, timeoutMs: 500 })
    const events: string[] = []
    subscriber
      .on('disconnected', () => events.push('disconnected'))
      .on('resubscribed', () => events.push('resubscribed'))
    try {
      const got = new Set<number>()
      await subscriber.subscribe('news', (m) => {
        got.add(m.n)
      })
      await publisher.publish('news', { n: 1 })
      await eventually(() => got.has(1), 5_000, 'the first message')
      await new Promise((r) => setTimeout(r, 300))
      expect(events).toEqual([])

      const slot = Number(await publisherClient.cluster('KEYSLOT', keyspace(prefix).channel('news')))
      const owner = await cluster.migrateSlot(slot)
      let n = 1
      await eventually(
        async () => {
          n++
          await publisher.publish('news', { n }).catch(() => -1)
          await new Promise((r) => setTimeout(r, 100))
          return got.has(n)
        },
        15_000,
        'a message after the migration',
      )
      // The move is reported, then answered once the subscription is active on the new owner.
      await eventually(() => events.includes('resubscribed'), 10_000, 'resubscribed')
      expect(events.indexOf('disconnected')).toBeGreaterThanOrEqual(0)
      expect(events.indexOf('disconnected')).toBeLessThan(events.indexOf('resubscribed'))
      // One subscriber, on the new owner.
      const newOwner = publisherClient.nodes('master').find((node) => node.options.port === owner.port)!
      const counts = (await newOwner.call('PUBSUB', 'SHARDNUMSUB', keyspace(prefix).channel('news'))) as [
        string,
        number,
      ]
      expect(counts[1]).toBe(1)
      expect(unhandled).toEqual([])
    } finally {
      process.off('unhandledRejection', onUnhandled)
      await Promise.all([publisher.close(), subscriber.close()]).catch(() => {})
      publisherClient.disconnect()
      subscriberClient.disconnect()
      await cluster.stop()
    }
  }, 60_000)
})
