import { ALGORITHM_NAMES, RateLimiter } from '@rp/ratelimit'
import type { Redis } from 'ioredis'
import RedisStore from 'rate-limit-redis'
import { RateLimiterRedis } from 'rate-limiter-flexible'

export interface Contender {
  /** Row label. */
  name: string
  library: string
  /** Settings stated in RESULTS.md. */
  settings: string
  setup(redis: Redis, prefix: string): Promise<(i: number) => Promise<unknown>>
  /** For the memory workload: fill one key to `hits` and return the keys it wrote. */
  fill?(redis: Redis, prefix: string, hits: number): Promise<string[]>
}

export const KEYS = 1_000
const LIMIT = 100
const WINDOW_MS = 60_000

// The smallest script that does what a fixed-window limiter must: count and set the TTL atomically.
const MINIMAL_LUA = `local n = redis.call('INCR', KEYS[1]) if n == 1 then redis.call('PEXPIRE', KEYS[1], ARGV[1]) end return n`

export function rateLimitContenders(): Contender[] {
  const rp: Contender[] = ALGORITHM_NAMES.map((algorithm) => ({
    name: `@rp/ratelimit ${algorithm}`,
    library: '@rp/ratelimit',
    settings: `RateLimiter { algorithm: '${algorithm}', limit: ${LIMIT}, windowMs: ${WINDOW_MS}, failure: 'open', timeoutMs: 1000 }`,
    async setup(redis, prefix) {
      const limiter = new RateLimiter({ redis, prefix, algorithm, limit: LIMIT, windowMs: WINDOW_MS })
      return (i) => limiter.limit(`k${i % KEYS}`)
    },
    async fill(redis, prefix, hits) {
      const limiter = new RateLimiter({ redis, prefix, algorithm, limit: LIMIT, windowMs: WINDOW_MS })
      for (let i = 0; i < hits; i++) await limiter.limit('mem')
      return [`${prefix}:{mem}:${algorithm}`]
    },
  }))
  return [
    ...rp,
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
        return (i) => limiter.consume(`k${i % KEYS}`).catch(() => undefined)
      },
      async fill(redis, prefix, hits) {
        const limiter = new RateLimiterRedis({
          storeClient: redis,
          points: LIMIT,
          duration: WINDOW_MS / 1000,
          keyPrefix: prefix,
        })
        for (let i = 0; i < hits; i++) await limiter.consume('mem').catch(() => undefined)
        return [`${prefix}:mem`]
      },
    },
    {
      name: 'rate-limit-redis store (fixed window)',
      library: 'rate-limit-redis',
      settings: `RedisStore { sendCommand: ioredis.call } with init({ windowMs: ${WINDOW_MS} }), increment() driven directly`,
      async setup(redis, prefix) {
        const store = new RedisStore({
          prefix: `${prefix}:`,
          sendCommand: (...args: string[]) => redis.call(args[0]!, ...args.slice(1)) as never,
        })
        store.init({ windowMs: WINDOW_MS } as never)
        return (i) => store.increment(`k${i % KEYS}`)
      },
    },
    {
      name: 'raw ioredis EVALSHA (INCR + PEXPIRE script)',
      library: 'baseline',
      settings: 'one EVALSHA of a 2-command fixed-window script: the client-side floor',
      async setup(redis, prefix) {
        const sha = (await redis.script('LOAD', MINIMAL_LUA)) as string
        return (i) => redis.evalsha(sha, 1, `${prefix}:k${i % KEYS}`, WINDOW_MS)
      },
    },
  ]
}

export { MINIMAL_LUA }
