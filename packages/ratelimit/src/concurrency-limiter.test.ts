import { describeEachTarget, eventually, uniquePrefix } from '@rp/testing/vitest'
import { expect, it } from 'vitest'
import { ConcurrencyLimiter } from './concurrency-limiter.js'
import { RateLimitExceededError } from './errors.js'

describeEachTarget('ConcurrencyLimiter', (target) => {
  const redis = target.client()

  it('admits at most `limit` leases and frees a slot on release', async () => {
    const slots = new ConcurrencyLimiter({ redis, prefix: uniquePrefix('c'), limit: 2, leaseMs: 30_000 })
    const leases = await Promise.all(Array.from({ length: 10 }, () => slots.tryAcquire('job')))
    const held = leases.filter((l) => l !== null)
    expect(held).toHaveLength(2)
    expect(await slots.active('job')).toBe(2)
    await expect(slots.acquire('job')).rejects.toBeInstanceOf(RateLimitExceededError)
    expect(await held[0]!.release()).toBe(true)
    expect(await held[0]!.release()).toBe(false)
    const next = await slots.acquire('job')
    expect(next.source).toBe('redis')
    await next.release()
    await held[1]!.release()
    expect(await slots.active('job')).toBe(0)
  })

  it('expires a lease that is never released, and waits for a slot within waitMs', async () => {
    const slots = new ConcurrencyLimiter({ redis, prefix: uniquePrefix('c'), limit: 1, leaseMs: 200 })
    const lost = await slots.acquire('job')
    expect(await lost.extend()).toBe(true)
    const started = Date.now()
    const next = await slots.acquire('job', { waitMs: 2_000 })
    expect(Date.now() - started).toBeGreaterThanOrEqual(150)
    expect(await lost.extend()).toBe(false)
    await next.release()
    await eventually(async () => (await slots.active('job')) === 0, 2_000, 'no leases')
  })
})
