import { ALGORITHM_NAMES, RateLimiter } from '@rp/ratelimit'
import type { Redis } from 'ioredis'
import RedisStore from 'rate-limit-redis'
import { RateLimiterRedis } from 'rate-limiter-flexible'
import type { Contender } from './compare.js'

export const KEYS = 1_000
const LIMIT = 100
const WINDOW_MS = 60_000

// The smallest script that does what a fixed-window limiter must: count and set the TTL atomically.
export const MINIMAL_LUA = `local n = redis.call('INCR', KEYS[1]) if n == 1 then redis.call('PEXPIRE', KEYS[1], ARGV[1]) end return n`

export function rateLimitContenders(): Contender[] {
  return [
    ...ALGORITHM_NAMES.map(
      (algorithm): Contender => ({
        name: `@rp/ratelimit ${algorithm}`,
        library: '@rp/ratelimit',
        settings: `RateLimiter { algorithm: '${algorithm}', limit: ${LIMIT}, windowMs: ${WINDOW_MS} } (defaults: failure 'open', timeoutMs 1000)`,
        async setup(redis, prefix) {
          const limiter = new RateLimiter({ redis, prefix, algorithm, limit: LIMIT, windowMs: WINDOW_MS })
          return { op: (i) => limiter.limit(`k${i % KEYS}`) }
        },
      }),
    ),
    {
      name: 'rate-limiter-flexible RateLimiterRedis',
      library: 'rate-limiter-flexible',
      settings: `RateLimiterRedis { storeClient: ioredis, points: ${LIMIT}, duration: ${WINDOW_MS / 1000} } (its default Lua path)`,
      async setup(redis, prefix) {
        const limiter = new RateLimiterRedis({
          storeClient: redis,
          points: LIMIT,
          duration: WINDOW_MS / 1000,
          keyPrefix: prefix,
        })
        return { op: (i) => limiter.consume(`k${i % KEYS}`).catch(() => undefined) }
      },
    },
    {
      name: 'rate-limit-redis store (fixed window)',
      library: 'rate-limit-redis',
      settings: `RedisStore { sendCommand: ioredis.call }, init({ windowMs: ${WINDOW_MS} }), increment() driven directly`,
      async setup(redis, prefix) {
        const store = new RedisStore({
          prefix: `${prefix}:`,
          sendCommand: (...args: string[]) => redis.call(args[0]!, ...args.slice(1)) as never,
        })
        store.init({ windowMs: WINDOW_MS } as never)
        return { op: (i) => store.increment(`k${i % KEYS}`) }
      },
    },
    {
      name: 'raw ioredis EVALSHA (INCR + PEXPIRE script)',
      library: 'baseline',
      settings: 'one EVALSHA of a 2-command fixed-window script: the client-side floor',
      async setup(redis, prefix) {
        const sha = (await redis.script('LOAD', MINIMAL_LUA)) as string
        return { op: (i) => redis.evalsha(sha, 1, `${prefix}:k${i % KEYS}`, WINDOW_MS) }
      },
    },
  ]
}

/** Memory per key: one key filled to its limit, measured with MEMORY USAGE. */
export async function rateLimitMemory(
  redis: Redis,
  admin: Redis,
): Promise<Array<{ name: string; bytesPerKey: number }>> {
  const out: Array<{ name: string; bytesPerKey: number }> = []
  for (const algorithm of ALGORITHM_NAMES) {
    const prefix = `mem-${algorithm}`
    const limiter = new RateLimiter({ redis, prefix, algorithm, limit: LIMIT, windowMs: WINDOW_MS })
    for (let i = 0; i < LIMIT; i++) await limiter.limit('mem')
    out.push({
      name: `@rp/ratelimit ${algorithm}`,
      bytesPerKey: Number(await admin.memory('USAGE', `${prefix}:{mem}:${algorithm}`, 'SAMPLES', '0')),
    })
  }
  const flexible = new RateLimiterRedis({
    storeClient: redis,
    points: LIMIT,
    duration: WINDOW_MS / 1000,
    keyPrefix: 'mem-rlf',
  })
  for (let i = 0; i < LIMIT; i++) await flexible.consume('mem').catch(() => undefined)
  out.push({
    name: 'rate-limiter-flexible RateLimiterRedis',
    bytesPerKey: Number(await admin.memory('USAGE', 'mem-rlf:mem', 'SAMPLES', '0')),
  })
  return out
}
