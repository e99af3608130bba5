import { randomBytes } from 'node:crypto'
import { parseArgs } from 'node:util'
import { type RedisClusterHandle, type RedisServer, startCluster, startRedis } from '@rp/testing'
import { type ArcadeProcess, spawnArcade, stopArcade } from './spawn.js'

/**
 * `pnpm start`: Redis (from the environment, else an embedded one), N app processes and the score
 * worker. `--instances 2` (or ARCADE_INSTANCES=2) runs two apps on consecutive ports; `--cluster`
 * starts the harness's 3-master cluster. SIGTERM or Ctrl-C stops everything in order.
 */
const { values } = parseArgs({
  options: {
    instances: { type: 'string', default: process.env.ARCADE_INSTANCES ?? '1' },
    cluster: { type: 'boolean', default: false },
    port: { type: 'string', default: process.env.PORT ?? '3000' },
  },
  // `pnpm start -- --instances 2` hands the script a literal `--`, which would end option parsing.
  args: process.argv.slice(2).filter((arg) => arg !== '--'),
})
const instances = Number(values.instances)
const basePort = Number(values.port)
if (!Number.isInteger(instances) || instances < 1 || instances > 8) {
  console.error('--instances must be an integer from 1 to 8')
  process.exit(2)
}
const log = (message: string) => console.log(`[arcade] ${message}`)

let embedded: RedisServer | null = null
let cluster: RedisClusterHandle | null = null
const env: Record<string, string> = {
  ARCADE_SECRET: process.env.ARCADE_SECRET ?? randomBytes(24).toString('base64url'),
}
const fromEnvironment =
  process.env.REDIS_URL || process.env.REDIS_CLUSTER_NODES || process.env.REDIS_SENTINELS
try {
  if (fromEnvironment) {
    log('using Redis from the environment (REDIS_URL, REDIS_CLUSTER_NODES or REDIS_SENTINELS)')
  } else if (values.cluster) {
    log('starting a 3-master, 3-replica Redis Cluster (redis-server binary)')
    cluster = await startCluster()
    env.REDIS_CLUSTER_NODES = cluster.nodes.map((n) => `${n.host}:${n.port}`).join(',')
  } else {
    log('REDIS_URL is not set: starting an embedded Redis (redis-server binary, else Docker)')
    // Append-only with fsync on every write: killed and restarted, it comes back with its data.
    // A memory limit with volatile-lru: sessions, caches and counters (all with TTLs) give way before
    // the all-time board, which has none.
    embedded = await startRedis({
      ownServer: true,
      args: [
        '--appendonly',
        'yes',
        '--appendfsync',
        'always',
        '--maxmemory',
        '256mb',
        '--maxmemory-policy',
        'volatile-lru',
      ],
    })
    env.REDIS_URL = embedded.url
    log(`embedded Redis (${embedded.source}) on ${embedded.url}; it stops when the arcade stops`)
  }
} catch (error) {
  console.error(
    '[arcade] No Redis to use. Either set REDIS_URL (e.g. REDIS_URL=redis://127.0.0.1:6379 pnpm start), ' +
      'or install redis-server on PATH (apt-get install redis-server / brew install redis), or start Docker.\n' +
      `  details: ${(error as Error).message}`,
  )
  process.exit(1)
}

const running = new Set<ArcadeProcess>()
let stopping = false

/** Starts a process and starts it again if it dies, as a process manager would. */
async function supervise(role: 'app' | 'worker', childEnv: Record<string, string>): Promise<void> {
  const proc = await spawnArcade(role, { ...env, ...childEnv })
  running.add(proc)
  proc.exited.then(({ code, signal }) => {
    running.delete(proc)
    if (stopping) return
    log(`${role} ${childEnv.ARCADE_INSTANCE ?? ''} exited (code ${code}, signal ${signal}); restarting it`)
    setTimeout(() => supervise(role, childEnv).catch((e: Error) => log(e.message)), 500)
  })
}

async function shutdown(signal: string): Promise<void> {
  if (stopping) return
  stopping = true
  log(`${signal}: stopping the apps, then the worker, then Redis`)
  const all = [...running]
  await Promise.all(all.filter((p) => p.role === 'app').map((p) => stopArcade(p)))
  await Promise.all(all.filter((p) => p.role === 'worker').map((p) => stopArcade(p)))
  await embedded?.stop()
  await cluster?.stop()
  process.exit(0)
}
process.on('SIGTERM', () => void shutdown('SIGTERM'))
process.on('SIGINT', () => void shutdown('SIGINT'))

try {
  await supervise('worker', { ARCADE_INSTANCE: 'worker' })
  await Promise.all(
    Array.from({ length: instances }, (_, i) =>
      supervise('app', { ARCADE_INSTANCE: String.fromCharCode(65 + i), PORT: String(basePort + i) }),
    ),
  )
  log(`ready: ${Array.from({ length: instances }, (_, i) => `http://localhost:${basePort + i}`).join('  ')}`)
} catch (error) {
  console.error(`[arcade] ${(error as Error).message}`)
  await shutdown('start-up failure')
}
