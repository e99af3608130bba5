import { type RedisServer, redisServerBinary, startBinaryServer } from './redis-server.js'

export interface StartRedisOptions {
  /** Extra redis-server arguments (binary only), e.g. `['--maxmemory', '10mb']`. */
  args?: string[]
  /** Ignore RP_REDIS_URL: fault tests need a server they may kill. */
  ownServer?: boolean
}

function unsupported(what: string): () => Promise<void> {
  return () => Promise.reject(new Error(`${what} is not possible on a server given by RP_REDIS_URL`))
}

function externalServer(url: string): RedisServer {
  const parsed = new URL(url)
  return {
    host: parsed.hostname,
    port: Number(parsed.port || 6379),
    url,
    source: 'external',
    stop: async () => {},
    kill: unsupported('kill'),
    restart: unsupported('restart'),
    pause: unsupported('pause'),
    resume: unsupported('resume'),
  }
}

async function dockerServer(): Promise<RedisServer> {
  // Loaded only here: most runs never need Docker, and the module is heavy.
  const { RedisContainer } = await import('@testcontainers/redis')
  const { getContainerRuntimeClient } = await import('testcontainers')
  const container = await new RedisContainer('redis:7-alpine')
    .withCommand(['redis-server', '--save', '', '--appendonly', 'no'])
    .start()
  // Faults go through the container runtime (docker kill / pause / unpause): a signal sent to PID 1
  // from inside the container is ignored, since PID 1 has no default signal handlers there.
  const runtime = await getContainerRuntimeClient()
  const handle = runtime.container.getById(container.getId())
  return {
    host: container.getHost(),
    port: container.getPort(),
    url: container.getConnectionUrl(),
    source: 'docker',
    stop: async () => {
      await container.stop()
    },
    kill: async () => {
      await handle.kill({ signal: 'SIGKILL' })
    },
    restart: async () => {
      await container.restart()
    },
    pause: async () => {
      await handle.pause()
    },
    resume: async () => {
      await handle.unpause()
    },
  }
}

/**
 * A Redis to test against, in this order: RP_REDIS_URL, the redis-server binary on a free port
 * with persistence off, then Docker through testcontainers.
 */
export async function startRedis(options: StartRedisOptions = {}): Promise<RedisServer> {
  const external = process.env.RP_REDIS_URL
  if (external && !options.ownServer) return externalServer(external)
  if (redisServerBinary()) return startBinaryServer({ args: options.args ?? [] })
  try {
    return await dockerServer()
  } catch (error) {
    throw new Error(
      'No Redis available: install redis-server (e.g. `apt-get install redis-server`) so it is on PATH, ' +
        `or start Docker so testcontainers can run one. Docker failed with: ${(error as Error).message}`,
    )
  }
}
