import { Redis } from 'ioredis'
import { describe, expect, inject, it } from 'vitest'
import { isRpError } from './errors.js'
import { RedisGuard } from './guard.js'

describe('RedisGuard', () => {
  it('a call that throws before returning a promise rejects, and never leaves the circuit stuck', async () => {
    const redis = new Redis(inject('rpRedisUrl'))
    const guard = new RedisGuard(redis, 1_000, { breaker: true })
    try {
      for (let i = 0; i < 10; i++) {
        let promise: Promise<unknown> | undefined
        expect(() => {
          promise = guard.run('boom', () => {
            throw new RangeError('too many arguments')
          })
        }).not.toThrow()
        expect(isRpError(await promise!.catch((e: unknown) => e))).toBe(true)
      }
      expect(await guard.run('ping', () => redis.ping())).toBe('PONG')
    } finally {
      redis.disconnect()
    }
  })
})
