import { expectInvalidArguments } from '@rp/testing/vitest'
import { Redis } from 'ioredis'
import { afterAll, expect, it } from 'vitest'
import { ConcurrencyLimiter } from './concurrency-limiter.js'
import { RateLimiter } from './limiter.js'
import { rateLimit, rateLimitHeaders } from './middleware/express.js'
import { MultiLimiter } from './multi-limiter.js'

// A misspelt option must be refused, not silently replaced by its default. Nothing here reaches Redis.
const redis = new Redis({ lazyConnect: true })
afterAll(() => redis.disconnect())
const limiter = new RateLimiter({ redis, algorithm: 'gcra', limit: 5, windowMs: 1_000 })

it('refuses a misspelt constructor option, naming it', () => {
  const gcra = (extra: object) => () =>
    new RateLimiter({ redis, algorithm: 'gcra', limit: 5, windowMs: 1_000, ...extra })
  const cases: Array<[() => unknown, RegExp]> = [
    [() => new RateLimiter({ redis, algorithm: 'gcra', limit: 5, windowMS: 1_000 } as never), /windowMS/],
    [gcra({ blockCache: { maxkeys: 5 } }), /blockCache\.maxkeys/],
    [gcra({ failure: { fallback: 'memory', max: 1 } }), /failure\.max/],
    [() => new MultiLimiter([limiter], { timeout: 5 } as never), /timeout/],
    [() => new ConcurrencyLimiter({ redis, limit: 2, ttlMs: 1_000, leaseMS: 5 } as never), /leaseMS/],
    [() => rateLimit({ limiter, keyGenerator: () => 'k' } as never), /keyGenerator/],
    [() => rateLimitHeaders(limiter, {} as never, { legacyHeader: true } as never), /legacyHeader/],
  ]
  for (const [make, name] of cases) {
    expect(make).toThrow(name)
    expect(make).toThrow(/: is not a known option/)
  }
})

it('rejects a misspelt call option, naming it', async () => {
  const multi = new MultiLimiter([limiter])
  const concurrency = new ConcurrencyLimiter({ redis, limit: 2, ttlMs: 1_000 })
  await expectInvalidArguments([
    [() => limiter.limit('k', { costs: 2 } as never), /costs: is not a known option/],
    [() => multi.limit('k', { weight: 2 } as never), /weight: is not a known option/],
    [() => concurrency.acquire('k', { wait: 5 } as never), /wait: is not a known option/],
  ])
})
