/**
 * A test worker process: takes one lock ITERATIONS times and does a read-modify-write on a shared
 * counter that has no atomicity of its own, printing its hold intervals (CLOCK_MONOTONIC, shared by
 * every process on the machine) as JSON for the history checker.
 */
import { Cluster, Redis } from 'ioredis'
import { LockManager } from './lock-manager.js'

const nodes = process.env.RP_CLUSTER_NODES
const redis = nodes ? new Cluster(JSON.parse(nodes)) : new Redis(process.env.RP_REDIS_URL!)
const locks = new LockManager({ redis, prefix: process.env.RP_PREFIX!, ttlMs: 10_000, waitMs: 120_000 })
const counter = `${process.env.RP_PREFIX}:{mutex}:counter`
const history: Array<[token: number, start: string, end: string]> = []
for (let i = 0; i < Number(process.env.RP_ITERATIONS); i++) {
  const lock = await locks.acquire('mutex')
  const start = process.hrtime.bigint()
  const value = Number((await redis.get(counter)) ?? 0)
  await redis.set(counter, value + 1, 'PX', 120_000)
  const end = process.hrtime.bigint()
  history.push([lock.token, start.toString(), end.toString()])
  await lock.release()
}
process.stdout.write(JSON.stringify(history))
await locks.close()
redis.disconnect()
