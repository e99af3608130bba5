import { Cache } from '@rp/cache'
import { LockManager } from '@rp/lock'
import { RateLimiter } from '@rp/ratelimit'
import { startCluster } from '@rp/testing'
import { Cluster } from 'ioredis'
import { fmt } from './compare.js'
import { run, type Sample, summarize } from './measure.js'

interface Workload {
  name: string
  build(redis: Cluster, prefix: string, batch: boolean): Promise<(i: number) => Promise<unknown>>
}

const KEYS = 1_000

const workloads: Workload[] = [
  {
    name: 'Rate-limit check (gcra), admitted',
    async build(redis, prefix, batch) {
      const limiter = new RateLimiter({
        redis,
        prefix,
        algorithm: 'gcra',
        limit: 10_000,
        windowMs: 60_000,
        batch,
      })
      return (i) => limiter.limit(`k${i % KEYS}`)
    },
  },
  {
    name: 'Lock acquire + release',
    async build(redis, prefix, batch) {
      const locks = new LockManager({ redis, prefix, batch })
      return async (i) => (await locks.acquire(`r${i}`, { ttlMs: 10_000, waitMs: 0 })).release()
    },
  },
  {
    name: 'Cache hit from Redis',
    async build(redis, prefix, batch) {
      const cache = new Cache({ redis, prefix, ttlMs: 600_000, batch })
      for (let i = 0; i < KEYS; i += 100)
        await Promise.all(Array.from({ length: 100 }, (_, j) => cache.set(`k${i + j}`, { id: i + j })))
      return (i) => cache.get(`k${i % KEYS}`)
    },
  },
]

/**
 * The hot workloads on the harness's cluster (3 masters, 3 replicas), @rp with tick batching
 * against @rp without it: calls group per master, keys of different slots sharing one script call.
 * Server figures are left out: they would be the sum of six servers' INFO.
 */
export async function clusterTables(options: { quick: boolean }): Promise<string[]> {
  const cluster = await startCluster({ masters: 3, replicas: 1 })
  const ops = options.quick ? 2_000 : 60_000
  const rounds = options.quick ? 2 : 4
  const lines: string[] = []
  try {
    for (const workload of workloads) {
      const lanes: Array<{
        batch: boolean
        op: (i: number) => Promise<unknown>
        client: Cluster
        samples: Sample[]
      }> = []
      for (const batch of [true, false]) {
        const client = new Cluster([...cluster.nodes])
        await new Promise((resolve) => client.once('ready', resolve))
        lanes.push({
          batch,
          client,
          op: await workload.build(client, `cl${batch}${Date.now().toString(36)}`, batch),
          samples: [],
        })
      }
      // Counters are per client and the server figures are not taken: run() needs an admin only
      // for them, so it gets a node of its own.
      const admin = lanes[0]!.client.nodes('master')[0]!
      for (const lane of lanes) await run(lane.op, options.quick ? 200 : 2_000, 8, { client: () => 0, admin })
      const perRound = Math.floor(ops / rounds)
      for (let round = 0; round < rounds; round++)
        for (let j = 0; j < lanes.length; j++) {
          const lane = lanes[(j + round) % lanes.length]!
          lane.samples.push(
            await run((n) => lane.op(n + round * perRound), perRound, 64, { client: () => 0, admin }),
          )
        }
      const [batched, alone] = lanes.map((l) => summarize(l.samples)) as [
        ReturnType<typeof summarize>,
        ReturnType<typeof summarize>,
      ]
      lines.push(
        `| ${workload.name} | ${fmt(batched.opsPerSec)} | ${fmt(alone.opsPerSec)} | ${fmt(batched.opsPerSec / alone.opsPerSec, 2)}× | ${fmt(batched.p99Ms, 2)} | ${fmt(alone.p99Ms, 2)} |`,
      )
      for (const lane of lanes) lane.client.disconnect()
    }
  } finally {
    await cluster.stop()
  }
  return [
    '### On a cluster (3 masters, 3 replicas), concurrency 64: @rp with batching against @rp with `batch: false`',
    '',
    '| Workload | ops/s batched | ops/s `batch: false` | gain | p99 ms batched | p99 ms `batch: false` |',
    '| --- | ---: | ---: | ---: | ---: | ---: |',
    ...lines,
    '',
  ]
}
