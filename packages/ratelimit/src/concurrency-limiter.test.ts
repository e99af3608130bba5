import { InvalidArgumentError, keyspace, ScriptError, WaitTimeoutError } from '@rp/core'
import { describeEachTarget, eventually, sleep, uniquePrefix } from '@rp/testing/vitest'
import { afterAll, expect, it } from 'vitest'
import { ConcurrencyLimiter } from './concurrency-limiter.js'
import { RateLimitExceededError } from './errors.js'

describeEachTarget('ConcurrencyLimiter', (target) => {
  const redis = target.client()
  const limiters: ConcurrencyLimiter[] = []
  const limiter = (options: { limit: number; leaseMs: number }) => {
    const l = new ConcurrencyLimiter({ redis, prefix: uniquePrefix('c'), ...options })
    limiters.push(l)
    return l
  }
  afterAll(() => Promise.all(limiters.map((l) => l.close())))

  it('admits at most `limit` leases and frees a slot on release', async () => {
    const slots = limiter({ limit: 2, leaseMs: 30_000 })
    const leases = await Promise.all(Array.from({ length: 10 }, () => slots.tryAcquire('job')))
    const held = leases.filter((l) => l !== null)
    expect(held).toHaveLength(2)
    expect(await slots.active('job')).toBe(2)
    await expect(slots.acquire('job')).rejects.toBeInstanceOf(RateLimitExceededError)
    expect(await held[0]!.release()).toBe('released')
    // The same answer again, without a round trip.
    expect(await held[0]!.release()).toBe('released')
    const next = await slots.acquire('job')
    expect(next.source).toBe('redis')
    await next.release()
    await held[1]!.release()
    expect(await slots.active('job')).toBe(0)
  })

  it('expires a lease that is never released, and waits for a slot within waitMs', async () => {
    const slots = limiter({ limit: 1, leaseMs: 200 })
    const lost = await slots.acquire('job')
    expect(await lost.extend()).toBe(true)
    const started = Date.now()
    const next = await slots.acquire('job', { waitMs: 2_000 })
    expect(Date.now() - started).toBeGreaterThanOrEqual(150)
    expect(await lost.extend()).toBe(false)
    await next.release()
    await eventually(async () => (await slots.active('job')) === 0, 2_000, 'no leases')
  })

  it('using() holds a lease while fn runs, and timing out is a WaitTimeoutError naming the key', async () => {
    const slots = limiter({ limit: 1, leaseMs: 300 })
    const result = await slots.using('job', async (signal, lease) => {
      expect(lease.source).toBe('redis')
      await new Promise((r) => setTimeout(r, 600))
      const error = await slots.acquire('job', { waitMs: 50 }).catch((e: unknown) => e)
      expect(error).toBeInstanceOf(RateLimitExceededError)
      expect(error).toBeInstanceOf(WaitTimeoutError)
      expect(error).toMatchObject({ resource: 'job', waitMs: 50 })
      return signal.aborted ? 'lost' : 'done'
    })
    expect(result).toBe('done')
    expect(await slots.active('job')).toBe(0)
  })

  it('fails open only when Redis is unreachable, never over a data error', async () => {
    const prefix = uniquePrefix('wrongtype')
    const slots = new ConcurrencyLimiter({ redis, prefix, limit: 1, ttlMs: 1_000, failure: 'open' })
    limiters.push(slots)
    await redis.set(keyspace(prefix).key('job', 'leases'), 'not a zset', 'PX', 60_000)
    await expect(slots.tryAcquire('job')).rejects.toBeInstanceOf(ScriptError)
  })

  it('names a bad key or wait', async () => {
    const slots = limiter({ limit: 1, leaseMs: 1_000 })
    await expect(slots.acquire('')).rejects.toThrow(InvalidArgumentError)
    await expect(slots.acquire('job', { waitMs: -1 })).rejects.toThrow(/waitMs/)
    await expect(slots.acquire('job', null as never)).rejects.toThrow(/options/)
    await expect(slots.active('')).rejects.toThrow(/key/)
    await expect(slots.tryAcquire('')).rejects.toThrow(/key/)
    // A try does not wait: a waitMs there would be silently meaningless.
    await expect(slots.tryAcquire('job', { waitMs: 5 } as never)).rejects.toThrow(
      /^waitMs: is not a known option/,
    )
  })

  it('wakes a waiter by pub/sub within milliseconds of a release', async () => {
    const slots = limiter({ limit: 1, leaseMs: 30_000 })
    for (let round = 0; round < 2; round++) {
      const held = await slots.acquire('job')
      let acquiredAt = 0
      const waiting = slots.acquire('job', { waitMs: 10_000 }).then((lease) => {
        acquiredAt = performance.now()
        return lease
      })
      // Long enough that the waiter's backoff has grown to hundreds of milliseconds.
      await sleep(1_500)
      const releasedAt = performance.now()
      await held.release()
      const lease = await waiting
      expect(acquiredAt - releasedAt).toBeLessThan(50)
      await lease.release()
    }
  })
})
