import { expectUnsupportedClientsRefused } from '@rp/testing/vitest'
import { it } from 'vitest'
import { ConcurrencyLimiter } from './concurrency-limiter.js'
import { RateLimiter } from './limiter.js'

it('refuses a client with stringNumbers or keyPrefix before any command', () => {
  expectUnsupportedClientsRefused((redis) => [
    () => new RateLimiter({ redis, algorithm: 'gcra', limit: 5, windowMs: 1_000 }),
    () => new ConcurrencyLimiter({ redis, limit: 2, ttlMs: 1_000 }),
  ])
})
