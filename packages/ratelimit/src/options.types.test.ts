import { Redis } from 'ioredis'
import { describe, expect, expectTypeOf, it } from 'vitest'
import { RateLimiter } from './limiter.js'
import type { RateLimiterOptions } from './options.js'

describe('RateLimiterOptions', () => {
  it('makes burst a compile error for algorithms without one, and an InvalidArgumentError at run time', () => {
    const redis = new Redis({ lazyConnect: true })
    expectTypeOf<{
      redis: Redis
      algorithm: 'gcra'
      limit: 1
      windowMs: 1
      burst: 2
    }>().toExtend<RateLimiterOptions>()
    expectTypeOf<{
      redis: Redis
      algorithm: 'fixed-window'
      limit: 1
      windowMs: 1
      burst: 2
    }>().not.toExtend<RateLimiterOptions>()
    const windowed = { redis, algorithm: 'fixed-window', limit: 1, windowMs: 1, burst: 2 } as const
    // @ts-expect-error burst does not apply to a fixed window
    expect(() => new RateLimiter(windowed)).toThrow(/^burst/)
    redis.disconnect()
  })
})
