/**
 * A test worker process: consumes a DurableChannel and records every delivery in a hash
 * (id -> times handled), until the stop key appears. The test SIGKILLs one of these midway.
 */
import { Cluster, Redis } from 'ioredis'
import { DurableChannel } from './durable-channel.js'

const nodes = process.env.RP_CLUSTER_NODES
const redis = nodes ? new Cluster(JSON.parse(nodes)) : new Redis(process.env.RP_REDIS_URL!)
const prefix = process.env.RP_PREFIX!
const channel = new DurableChannel<{ n: number }>({ redis, prefix, name: 'jobs' })
const handled = `${prefix}:{handled}`
const worker = channel.consume(
  'g',
  async (_, { id }) => {
    await redis.hincrby(handled, id, 1)
  },
  { concurrency: 8, visibilityTimeoutMs: 1_000, blockMs: 200 },
)
await redis.set(`${prefix}:{ready}:${process.env.RP_WORKER}`, '1', 'PX', 60_000)
while (!(await redis.exists(`${prefix}:stop`))) await new Promise((r) => setTimeout(r, 50))
await worker.close()
process.stdout.write(JSON.stringify({ ok: true }))
redis.disconnect()
