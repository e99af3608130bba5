/**
 * A test worker process: keeps submitting new scores for existing members (and adding members)
 * until the stop key appears, so an export in the test process runs under concurrent writes.
 */
import { Cluster, Redis } from 'ioredis'
import { Leaderboard } from './leaderboard.js'

const nodes = process.env.RP_CLUSTER_NODES
const redis = nodes ? new Cluster(JSON.parse(nodes)) : new Redis(process.env.RP_REDIS_URL!)
const board = new Leaderboard({ redis, prefix: process.env.RP_PREFIX!, name: 'export', update: 'replace' })
const worker = Number(process.env.RP_WORKER)
const members = Number(process.env.RP_MEMBERS)
const stop = `${process.env.RP_PREFIX}:stop`
let writes = 0
await redis.set(`${process.env.RP_PREFIX}:{ready}:${worker}`, '1', 'PX', 60_000)
for (let i = 0; ; i++) {
  if (i % 50 === 0 && (await redis.exists(stop))) break
  await board.submit(`m${(i * 7919 + worker) % members}`, Math.floor(Math.random() * 1_000))
  writes++
}
process.stdout.write(JSON.stringify({ writes }))
redis.disconnect()
