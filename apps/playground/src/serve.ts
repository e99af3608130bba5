import { createRedis, installShutdownHandlers } from '@rp/core'
import { createArcade } from './app.js'
import { createServices } from './services.js'
import { relayEvents, startScoreWorker } from './worker.js'

/**
 * One process of the arcade: `app` serves HTTP on PORT, `worker` consumes score events. Both take
 * Redis from the environment (REDIS_URL, REDIS_CLUSTER_NODES, REDIS_SENTINELS), as core does.
 */
const role = process.argv[2]
if (role !== 'app' && role !== 'worker') {
  console.error('usage: serve.ts app|worker')
  process.exit(2)
}
const instance = process.env.ARCADE_INSTANCE ?? (role === 'app' ? 'A' : 'worker')
const log = (message: string) => console.log(`[${role} ${instance}] ${message}`)
const ready = (detail: Record<string, unknown>) => {
  // The supervisor and the browser tests wait for this message before they go on.
  process.send?.({ ready: true, role, instance, ...detail })
}

const redis = createRedis()
const services = createServices(redis)

/** Retries a start-up step while Redis is unreachable, so a process may start before Redis does. */
async function untilUp(what: string, step: () => Promise<void>): Promise<void> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await step()
    } catch (error) {
      if (attempt === 1 || attempt % 10 === 0) log(`${what} failed (${(error as Error).message}); retrying`)
      await new Promise((resolve) => setTimeout(resolve, Math.min(2_000, 100 * attempt)))
    }
  }
}

if (role === 'app') {
  const arcade = createArcade({
    services,
    instance,
    secret: process.env.ARCADE_SECRET ?? 'arcade-dev-secret-change-me',
  })
  // Serve at once, Redis or not: with Redis down the page says so, and the relays join when it is up.
  void untilUp('subscribing', arcade.start)
  const port = Number(process.env.PORT ?? 3000)
  const server = arcade.app.listen(port, process.env.HOST ?? '127.0.0.1', (error?: Error) => {
    if (error) {
      console.error(`[${role} ${instance}] cannot listen on port ${port}: ${error.message}`)
      process.exit(1)
    }
    log(`open http://localhost:${port}`)
    ready({ port })
  })
  installShutdownHandlers(redis, {
    timeoutMs: 5_000,
    beforeShutdown: async () => {
      log('shutting down')
      arcade.close()
      server.closeAllConnections()
      await new Promise<void>((resolve) => server.close(() => resolve()))
      await services.close()
    },
  })
} else {
  const stopRelay = relayEvents(services, instance)
  const worker = startScoreWorker(services, {
    consumer: process.env.ARCADE_CONSUMER ?? 'worker-1',
    ackDelayMs: Number(process.env.ARCADE_ACK_DELAY_MS ?? 0),
  })
  log('consuming score events')
  ready({})
  installShutdownHandlers(redis, {
    timeoutMs: 10_000,
    beforeShutdown: async () => {
      log('shutting down: finishing and acknowledging the events in flight')
      await worker.close({ graceMs: 5_000 })
      stopRelay()
      await services.close()
    },
  })
}
