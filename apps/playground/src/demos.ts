import { Cache } from '@rp/cache'
import type { RedisClient } from '@rp/core'
import { LockManager } from '@rp/lock'
import { RateLimiter } from '@rp/ratelimit'

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))

/** One instance of each pattern, configured to make its behaviour visible from a browser. */
export function createDemos(redis: RedisClient) {
  const limiter = new RateLimiter({
    redis,
    prefix: 'playground:rl',
    algorithm: 'gcra',
    limit: 5,
    windowMs: 10_000,
    burst: 5,
  })
  const locks = new LockManager({ redis, prefix: 'playground:lock', ttlMs: 5_000 })
  const cache = new Cache({
    redis,
    prefix: 'playground',
    ttlMs: 15_000,
    graceMs: 60_000,
    l1: { maxEntries: 100, ttlMs: 5_000 },
  })
  let factoryCalls = 0

  return {
    /** 5 requests per 10 s with a burst of 5, on the server clock. */
    async rateLimit(who: string) {
      return limiter.limit(who)
    },
    /** Holds a lock for 1 s; concurrent clicks queue up and show rising fencing tokens. */
    async lock() {
      const started = performance.now()
      return locks.using(
        'demo',
        async (_signal, lock) => {
          const waitedMs = Math.round(performance.now() - started)
          await sleep(1_000)
          return { token: lock.token, waitedMs }
        },
        { waitMs: 15_000 },
      )
    },
    /** A 500 ms "database query" behind getOrSet: fresh for 15 s, then served stale while it refreshes. */
    async cached() {
      const started = performance.now()
      const value = await cache.getOrSet('slow-query', async () => {
        factoryCalls++
        await sleep(500)
        return { computedAt: new Date().toISOString() }
      })
      return { value, ms: Math.round(performance.now() - started), factoryCalls, stats: cache.stats() }
    },
    async close() {
      await Promise.all([locks.close(), cache.close()])
    },
  }
}

export type Demos = ReturnType<typeof createDemos>
