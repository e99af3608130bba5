import { createRedis, installShutdownHandlers, type RedisClient } from '@rp/core'
import { type RedisServer, startRedis } from '@rp/testing'
import { createDemos } from './demos.js'
import { createPlayground } from './server.js'

const log = (message: string) => console.log(`[playground] ${message}`)

async function connect(): Promise<{ redis: RedisClient; target: string; embedded: RedisServer | null }> {
  if (process.env.REDIS_URL || process.env.REDIS_CLUSTER_NODES || process.env.REDIS_SENTINELS) {
    const redis = createRedis()
    return { redis, target: process.env.REDIS_URL ?? 'Redis from the environment', embedded: null }
  }
  log('REDIS_URL is not set: starting an embedded Redis (redis-server binary, else Docker)')
  let embedded: RedisServer
  try {
    embedded = await startRedis({ ownServer: true })
  } catch (error) {
    console.error(
      '[playground] No Redis to use. Either set REDIS_URL (e.g. REDIS_URL=redis://127.0.0.1:6379 pnpm start), ' +
        'or install redis-server on PATH (apt-get install redis-server / brew install redis), or start Docker.\n' +
        `  details: ${(error as Error).message}`,
    )
    process.exit(1)
  }
  log(`embedded Redis (${embedded.source}) listening on ${embedded.url}; it stops when the playground exits`)
  return { redis: createRedis({ url: embedded.url }), target: `${embedded.url} (embedded)`, embedded }
}

const { redis, target, embedded } = await connect()
const demos = createDemos(redis)
const server = createPlayground({ redis, target, demos })
const port = Number(process.env.PORT ?? 3000)
server.listen(port, () => log(`open http://localhost:${port}`))

installShutdownHandlers(redis, {
  timeoutMs: 3_000,
  beforeShutdown: async () => {
    log('shutting down')
    await new Promise<void>((resolve) => server.close(() => resolve()))
    server.closeAllConnections()
    await demos.close()
  },
  // The embedded server goes last, after the client has quit.
  afterShutdown: () => embedded?.stop(),
})
