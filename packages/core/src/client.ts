import { Cluster, type Redis } from 'ioredis'
import { InvalidArgumentError, RedisUnavailableError, UnsupportedClientError } from './errors.js'

/** Any client @rp accepts: a standalone/Sentinel `Redis` or a `Cluster`. */
export type RedisClient = Redis | Cluster

export function isCluster(redis: RedisClient): redis is Cluster {
  return redis instanceof Cluster || (redis as { isCluster?: boolean }).isCluster === true
}

/**
 * Rejects clients with ioredis `keyPrefix`: ioredis applies it to KEYS arguments but not to SCAN
 * patterns or keys passed in ARGV, so scans would miss keys and scripts would touch the wrong ones.
 */
export function assertUsableClient(redis: RedisClient | undefined | null): RedisClient {
  if (!redis || typeof redis !== 'object')
    throw new InvalidArgumentError('redis', 'an ioredis Redis or Cluster client is required')
  const prefix = isCluster(redis) ? redis.options.redisOptions?.keyPrefix : (redis as Redis).options.keyPrefix
  if (prefix) {
    throw new UnsupportedClientError(
      `the ioredis client has keyPrefix '${prefix}'; @rp does not support keyPrefix because ioredis does not apply ` +
        "it to SCAN patterns or script arguments. Remove keyPrefix and pass the same value as the package's `prefix`/`namespace` option.",
    )
  }
  return redis
}

/**
 * Every master of a cluster, or the single server: what SCAN, INFO and FLUSH must visit. A cluster
 * client knows its nodes only once it has loaded the slot map, so this waits for that (bounded by
 * the caller's own timeout; the client's retry policy decides when it gives up).
 */
export async function masters(redis: RedisClient): Promise<Redis[]> {
  if (!isCluster(redis)) return [redis as Redis]
  if (redis.status === 'wait') await redis.connect()
  if (redis.status !== 'ready') {
    await new Promise<void>((resolve, reject) => {
      const onReady = () => {
        redis.off('end', onEnd)
        resolve()
      }
      const onEnd = () => {
        redis.off('ready', onReady)
        reject(new RedisUnavailableError('cluster connection ended before it was ready'))
      }
      redis.once('ready', onReady)
      redis.once('end', onEnd)
    })
  }
  return redis.nodes('master')
}
