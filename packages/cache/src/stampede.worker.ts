/**
 * A test worker: waits for the start signal, then fires CALLERS concurrent getOrSet calls on one
 * cold key whose factory counts its calls in Redis. Prints the values it got as JSON.
 */
import { Cluster, Redis } from 'ioredis'
import { Cache } from './cache.js'

const nodes = process.env.RP_CLUSTER_NODES
const redis = nodes ? new Cluster(JSON.parse(nodes)) : new Redis(process.env.RP_REDIS_URL!)
const namespace = process.env.RP_NAMESPACE!
const cache = new Cache({ redis, namespace, ttlMs: 60_000 })
const calls = `${namespace}:{stampede}:factory-calls`
await redis.incr(`${namespace}:{stampede}:ready`)
while ((await redis.get(`${namespace}:{stampede}:go`)) === null) await new Promise((r) => setTimeout(r, 5))
const values = await Promise.all(
  Array.from({ length: Number(process.env.RP_CALLERS) }, () =>
    cache.getOrSet('cold', async () => {
      await redis.incr(calls)
      await new Promise((r) => setTimeout(r, 200))
      return 'computed once'
    }),
  ),
)
process.stdout.write(JSON.stringify(values))
await cache.close()
redis.disconnect()
