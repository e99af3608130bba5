import { keyspace } from '@rp/core'
import { type RedisClusterHandle, startCluster } from '@rp/testing'
import { eventually, uniquePrefix } from '@rp/testing/vitest'
import { Cluster } from 'ioredis'
import { describe, expect, it } from 'vitest'
import { PubSub } from './pubsub.js'

type Events = { news: { n: number } }

/**
 * A cluster of its own with a publisher and a subscriber PubSub (sharded) on separate clients; the
 * subscriber's `disconnected` and `resubscribed` are recorded in order. Everything is torn down after.
 */
async function withShardedPair(
  replicas: number,
  body: (pair: {
    cluster: RedisClusterHandle
    publisherClient: Cluster
    publisher: PubSub<Events>
    subscriber: PubSub<Events>
    prefix: string
    events: string[]
    unhandled: unknown[]
  }) => Promise<void>,
): Promise<void> {
  const cluster = await startCluster({ masters: 3, replicas })
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
    await body({ cluster, publisherClient, publisher, subscriber, prefix, events, unhandled })
  } finally {
    process.off('unhandledRejection', onUnhandled)
    await Promise.all([publisher.close(), subscriber.close()]).catch(() => {})
    publisherClient.disconnect()
    subscriberClient.disconnect()
    await cluster.stop()
  }
}

/** Subscribes to `news` and waits for a first message; returns the numbers received, as they come. */
async function subscribeAndConfirm(
  publisher: PubSub<Events>,
  subscriber: PubSub<Events>,
): Promise<Set<number>> {
  const got = new Set<number>()
  await subscriber.subscribe('news', (m) => {
    got.add(m.n)
  })
  await publisher.publish('news', { n: 1 })
  await eventually(() => got.has(1), 5_000, 'the first message')
  return got
}

/** Publishes increasing numbers until one arrives. */
async function publishUntilDelivered(
  publisher: PubSub<Events>,
  got: Set<number>,
  what: string,
  timeoutMs: number,
) {
  let n = 1
  await eventually(
    async () => {
      n++
      await publisher.publish('news', { n }).catch(() => -1)
      await new Promise((r) => setTimeout(r, 100))
      return got.has(n)
    },
    timeoutMs,
    what,
  )
}

describe('PubSub sharded (SPUBLISH / SSUBSCRIBE) on a cluster', () => {
  it('delivers, and keeps delivering after the master of the channel is killed and its replica takes over', async () => {
    await withShardedPair(
      1,
      async ({ cluster, publisherClient, publisher, subscriber, prefix, events, unhandled }) => {
        const got = await subscribeAndConfirm(publisher, subscriber)

        await cluster.waitForReplication()
        const slot = Number(await publisherClient.cluster('KEYSLOT', keyspace(prefix).channel('news')))
        await cluster.killMaster(slot)
        await cluster.waitForFailover()
        // The subscriber re-subscribes on the promoted replica by itself.
        await publishUntilDelivered(publisher, got, 'a message after the failover', 30_000)
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
      },
    )
  }, 90_000)

  it('keeps delivering after the slot of the channel moves to another master', async () => {
    await withShardedPair(
      0,
      async ({ cluster, publisherClient, publisher, subscriber, prefix, events, unhandled }) => {
        const got = await subscribeAndConfirm(publisher, subscriber)
        await new Promise((r) => setTimeout(r, 300))
        expect(events).toEqual([])

        const slot = Number(await publisherClient.cluster('KEYSLOT', keyspace(prefix).channel('news')))
        const owner = await cluster.migrateSlot(slot)
        await publishUntilDelivered(publisher, got, 'a message after the migration', 15_000)
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
      },
    )
  }, 60_000)
})
