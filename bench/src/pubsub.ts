import { scanKeys } from '@rp/core'
import { DurableChannel, PubSub } from '@rp/pubsub'
import { Queue, Worker } from 'bullmq'
import { RedisPubSub } from 'graphql-redis-subscriptions'
import { Redis } from 'ioredis'
import type { Contender } from './compare.js'
import { CLIENT_OPTIONS } from './compare.js'

const SUBSCRIBERS = 4

/** Resolves each op once every subscriber has its message: publish → last delivery. */
function fanIn() {
  const waiting = new Map<number, { left: number; done: () => void }>()
  return {
    expect(id: number): Promise<void> {
      return new Promise((resolve) => waiting.set(id, { left: SUBSCRIBERS, done: resolve }))
    },
    delivered(id: number): void {
      const w = waiting.get(id)
      if (w && --w.left === 0) {
        waiting.delete(id)
        w.done()
      }
    },
  }
}

const MESSAGE = (id: number) => ({ id, userId: 'u42', action: 'login', at: 1_764_300_000_000 })

export function broadcastContenders(): Contender[] {
  return [
    {
      name: '@rp/pubsub PubSub',
      library: '@rp/pubsub',
      settings: `new PubSub({ redis, prefix }): publish(channel, message); ${SUBSCRIBERS} buses subscribed (one connection each)`,
      async setup(redis, prefix, ctx) {
        const fan = fanIn()
        const publisher = new PubSub<{ events: { id: number } }>({ redis, prefix })
        const clients = Array.from({ length: SUBSCRIBERS }, () => new Redis(ctx.url, CLIENT_OPTIONS))
        const subscribers = clients.map(
          (client) => new PubSub<{ events: { id: number } }>({ redis: client, prefix }),
        )
        for (const s of subscribers) await s.subscribe('events', (m) => fan.delivered(m.id))
        return {
          op: async (i) => {
            const done = fan.expect(i)
            await publisher.publish('events', MESSAGE(i))
            await done
          },
          close: async () => {
            await Promise.all(subscribers.map((s) => s.close()))
            for (const c of clients) c.disconnect()
          },
        }
      },
    },
    {
      name: 'graphql-redis-subscriptions RedisPubSub',
      library: 'graphql-redis-subscriptions',
      settings: `new RedisPubSub({ publisher: ioredis, subscriber: ioredis }) x ${SUBSCRIBERS} (one subscriber connection each): publish(trigger, payload)`,
      async setup(redis, prefix, ctx) {
        const fan = fanIn()
        const connections = Array.from({ length: SUBSCRIBERS + 1 }, () => new Redis(ctx.url, CLIENT_OPTIONS))
        const publisher = new RedisPubSub({ publisher: redis, subscriber: connections[0]! })
        const subscribers = connections
          .slice(1)
          .map((subscriber) => new RedisPubSub({ publisher: redis, subscriber }))
        for (const s of subscribers)
          await s.subscribe(`${prefix}:events`, (m: { id: number }) => fan.delivered(m.id))
        return {
          op: async (i) => {
            const done = fan.expect(i)
            await publisher.publish(`${prefix}:events`, MESSAGE(i))
            await done
          },
          // RedisPubSub.close() quits the publisher too, which every instance here shares.
          close: async () => {
            for (const c of connections) c.disconnect()
          },
        }
      },
    },
    {
      name: 'raw ioredis PUBLISH + JSON',
      library: 'baseline',
      settings: `publish(channel, JSON.stringify(message)) with ${SUBSCRIBERS} subscriber connections parsing JSON`,
      async setup(redis, prefix, ctx) {
        const fan = fanIn()
        const subscribers = Array.from({ length: SUBSCRIBERS }, () => new Redis(ctx.url, CLIENT_OPTIONS))
        for (const s of subscribers) {
          s.on('message', (_: string, text: string) => fan.delivered((JSON.parse(text) as { id: number }).id))
          await s.subscribe(`${prefix}:events`)
        }
        return {
          op: async (i) => {
            const done = fan.expect(i)
            await redis.publish(`${prefix}:events`, JSON.stringify(MESSAGE(i)))
            await done
          },
          close: async () => {
            for (const s of subscribers) s.disconnect()
          },
        }
      },
    },
  ]
}

const CONSUMERS = 4

/** Resolves each op once a consumer has handled its job: publish → handled. */
function handoff() {
  const waiting = new Map<number, () => void>()
  return {
    expect: (id: number) => new Promise<void>((resolve) => waiting.set(id, resolve)),
    handled(id: number) {
      waiting.get(id)?.()
      waiting.delete(id)
    },
  }
}

export function durableContenders(): Contender[] {
  return [
    {
      name: '@rp/pubsub DurableChannel',
      library: '@rp/pubsub',
      settings: `publish(job) + ${CONSUMERS} workers consume(group, handler, { concurrency: 16 }): XADD, XREADGROUP, XACK`,
      async setup(redis, prefix, ctx) {
        const h = handoff()
        const jobs = new DurableChannel<{ id: number }>({ redis, prefix, name: 'jobs' })
        const clients = Array.from({ length: CONSUMERS }, () => new Redis(ctx.url, CLIENT_OPTIONS))
        const workers = clients.map((client) =>
          new DurableChannel<{ id: number }>({ redis: client, prefix, name: 'jobs' }).consume(
            'g',
            (job) => h.handled(job.id),
            { concurrency: 16, blockMs: 100 },
          ),
        )
        return {
          op: async (i) => {
            const done = h.expect(i)
            await jobs.publish(MESSAGE(i))
            await done
          },
          close: async () => {
            await Promise.all(workers.map((w) => w.close()))
            for (const c of clients) c.disconnect()
          },
        }
      },
    },
    {
      name: 'BullMQ Queue + Worker',
      library: 'bullmq',
      ownConnection: true,
      settings: `queue.add(name, data) + ${CONSUMERS} Workers with concurrency 16 (removeOnComplete, removeOnFail)`,
      async setup(_redis, prefix, ctx) {
        const h = handoff()
        const url = new URL(ctx.url)
        const connection = { host: url.hostname, port: Number(url.port), maxRetriesPerRequest: null }
        const queue = new Queue(prefix, { connection })
        const workers = Array.from(
          { length: CONSUMERS },
          () =>
            new Worker(prefix, async (job) => h.handled((job.data as { id: number }).id), {
              connection,
              concurrency: 16,
            }),
        )
        await Promise.all(workers.map((w) => w.waitUntilReady()))
        return {
          op: async (i) => {
            const done = h.expect(i)
            await queue.add('job', MESSAGE(i), { removeOnComplete: true, removeOnFail: true })
            await done
          },
          close: async () => {
            await Promise.all(workers.map((w) => w.close()))
            await queue.close()
          },
        }
      },
    },
  ]
}

/** MEMORY USAGE of every key under `match` (SAMPLES 0: exact). */
async function bytesUnder(admin: Redis, match: string): Promise<number> {
  let bytes = 0
  for await (const keys of scanKeys(admin, { match }))
    for (const key of keys) bytes += Number(await admin.memory('USAGE', key, 'SAMPLES', '0'))
  return bytes
}

/** Sends the benchmark's first 1,000 messages, 100 in flight. */
async function thousand(send: (message: ReturnType<typeof MESSAGE>) => Promise<unknown>): Promise<void> {
  for (let i = 0; i < 1_000; i += 100)
    await Promise.all(Array.from({ length: 100 }, (_, j) => send(MESSAGE(i + j))))
}

/**
 * Memory per 1,000 retained messages of the benchmark's shape: a DurableChannel's stream, a
 * sequenced PubSub's replay stream (`replay: 1000`), and BullMQ's waiting jobs.
 */
export async function pubsubMemory(
  redis: Redis,
  admin: Redis,
): Promise<Array<{ name: string; bytesPer1000: number }>> {
  const stamp = Date.now().toString(36)
  const durable = new DurableChannel<ReturnType<typeof MESSAGE>>({
    redis,
    prefix: `memd${stamp}`,
    name: 'jobs',
  })
  await thousand((m) => durable.publish(m))
  const replay = new PubSub<{ events: ReturnType<typeof MESSAGE> }>({
    redis,
    prefix: `memr${stamp}`,
    sequenced: true,
    replay: 1_000,
  })
  await thousand((m) => replay.publish('events', m))
  await replay.close()
  const connection = redis.duplicate()
  const queue = new Queue(`memq${stamp}`, { connection })
  await thousand((m) => queue.add('job', m))
  const rows = [
    { name: '@rp/pubsub DurableChannel (stream)', bytesPer1000: await bytesUnder(admin, `memd${stamp}*`) },
    {
      name: '@rp/pubsub PubSub replay stream (replay: 1000)',
      bytesPer1000: await bytesUnder(admin, `memr${stamp}*`),
    },
    {
      name: 'BullMQ Queue (1,000 waiting jobs)',
      bytesPer1000: await bytesUnder(admin, `bull:memq${stamp}*`),
    },
  ]
  await queue.close()
  connection.disconnect()
  return rows
}
