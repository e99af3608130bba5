import { Cluster, Redis, type RedisOptions } from 'ioredis'
import { InvalidArgumentError, RedisUnavailableError, toRpError, UnsupportedClientError } from './errors.js'
import { withTimeout } from './timeout.js'

/** Any client @rp accepts: a standalone/Sentinel `Redis` or a `Cluster`. */
export type RedisClient = Redis | Cluster

export function isCluster(redis: RedisClient): redis is Cluster {
  return redis instanceof Cluster || (redis as { isCluster?: boolean }).isCluster === true
}

/** Whether `redis` is an ioredis Redis or Cluster at all; what a helper that only sends PING, INFO or QUIT needs. */
export function assertClient(redis: RedisClient | undefined | null): RedisClient {
  if (
    !redis ||
    typeof redis !== 'object' ||
    typeof (redis as Redis).evalsha !== 'function' ||
    typeof (redis as Redis).duplicate !== 'function' ||
    typeof (redis as Redis).options !== 'object'
  )
    throw new InvalidArgumentError('redis', 'an ioredis Redis or Cluster client is required')
  return redis
}

/**
 * Every set of options a client's connections are made with: a standalone client's own; a
 * cluster's top level, its redisOptions, and each startup node given as an object (ioredis keeps
 * those per host:port and reapplies them to every connection to that node).
 */
function optionSets(redis: RedisClient): Array<Partial<RedisOptions>> {
  if (!isCluster(redis)) return [(redis as Redis).options]
  const sets: Array<Partial<RedisOptions>> = [
    redis.options as Partial<RedisOptions>,
    redis.options.redisOptions ?? {},
  ]
  const nodes = (redis as unknown as { startupNodes?: unknown }).startupNodes
  if (Array.isArray(nodes))
    for (const node of nodes) if (node && typeof node === 'object') sets.push(node as Partial<RedisOptions>)
  return sets
}

/**
 * assertClient, and no option that would make @rp wrong without an error:
 * - `keyPrefix`: ioredis applies it to KEYS arguments but not to SCAN patterns or keys passed in
 *   ARGV, so scans would miss keys and scripts would touch the wrong ones.
 * - `stringNumbers` (unless `integers: false`, for a caller that reads no integer reply): every
 *   integer reply arrives as a string, so each check of a reply against a number (a lock taken, a
 *   request allowed, a loader elected) would quietly read as "no".
 */
export function assertUsableClient(
  redis: RedisClient | undefined | null,
  { integers = true }: { integers?: boolean } = {},
): RedisClient {
  assertClient(redis)
  for (const options of optionSets(redis!)) {
    if (integers && options.stringNumbers) {
      throw new UnsupportedClientError(
        'the ioredis client has stringNumbers: true; @rp reads integer replies as numbers, and with strings its checks ' +
          'would fail silently. Give @rp a client without it, e.g. redis.duplicate({ stringNumbers: false }).',
      )
    }
    if (options.keyPrefix) {
      throw new UnsupportedClientError(
        `the ioredis client has keyPrefix '${options.keyPrefix}'; @rp does not support keyPrefix because ioredis does not apply ` +
          "it to SCAN patterns or script arguments. Remove keyPrefix and pass the same value as the package's `prefix`/`namespace` option.",
      )
    }
  }
  return redis!
}

/**
 * Every master of a cluster, or the single server: what SCAN, INFO and FLUSH must visit. A cluster
 * client knows its nodes only once it has loaded the slot map, so this waits for that, at most
 * `timeoutMs`, and rejects with an @rp error.
 */
export function masters(redis: RedisClient, timeoutMs = 2_000): Promise<Redis[]> {
  if (!isCluster(redis)) return Promise.resolve([redis as Redis])
  if (redis.status === 'ready') return Promise.resolve(redis.nodes('master'))
  let cleanup = () => {}
  const ready = new Promise<void>((resolve, reject) => {
    const onReady = () => {
      cleanup()
      resolve()
    }
    const onEnd = () => {
      cleanup()
      reject(new RedisUnavailableError('cluster connection ended before it was ready'))
    }
    cleanup = () => {
      redis.off('ready', onReady)
      redis.off('end', onEnd)
    }
    redis.once('ready', onReady)
    redis.once('end', onEnd)
    if (redis.status === 'wait') redis.connect().catch(() => {})
  })
  return withTimeout(ready, timeoutMs, 'cluster ready').then(
    () => redis.nodes('master'),
    (error: unknown) => {
      cleanup()
      throw toRpError(error, 'cluster ready')
    },
  )
}

/**
 * A dedicated new connection to one node of `redis` (the server itself, or one of a cluster's
 * masters), with the client's own settings (host, auth, TLS) and `overrides`. For connections that
 * must not be shared: a subscriber, a CLIENT TRACKING redirect target. The caller owns it.
 */
export function nodeConnection(redis: RedisClient, node: Redis, overrides: RedisOptions): Redis {
  const options = isCluster(redis) ? node.options : (redis as Redis).options
  return new Redis({ ...options, ...overrides })
}
