import { InvalidArgumentError } from '@rp/core'
import { describeEachTarget, uniquePrefix } from '@rp/testing/vitest'
import { expect, it } from 'vitest'
import { RateLimiter } from './limiter.js'
import { MultiLimiter } from './multi-limiter.js'

describeEachTarget('MultiLimiter', (target) => {
  const redis = target.client()

  it('records a hit in every policy or in none', async () => {
    const perSecond = new RateLimiter({
      redis,
      prefix: uniquePrefix('s'),
      algorithm: 'sliding-window',
      limit: 2,
      windowMs: 60_000,
    })
    const perHour = new RateLimiter({
      redis,
      prefix: uniquePrefix('h'),
      algorithm: 'gcra',
      limit: 3,
      windowMs: 3_600_000,
    })
    const both = new MultiLimiter([perSecond, perHour])
    const results = [await both.limit('u'), await both.limit('u'), await both.limit('u')]
    expect(results.map((r) => r.allowed)).toEqual([true, true, false])
    const denied = results[2]!
    expect(denied.policy).toBe(perSecond.options.policy)
    expect(denied.results.map((r) => r.allowed)).toEqual([false, true])
    // The denied call consumed nothing from the policy that would have admitted it.
    expect(await perHour.peek('u')).toMatchObject({ allowed: true, remaining: 1 })
    expect(results[1]!.remaining).toBe(0)
  })

  it('stays all-or-nothing under concurrency', async () => {
    const a = new RateLimiter({
      redis,
      prefix: uniquePrefix('a'),
      algorithm: 'fixed-window',
      limit: 7,
      windowMs: 86_400_000,
    })
    const b = new RateLimiter({
      redis,
      prefix: uniquePrefix('b'),
      algorithm: 'token-bucket',
      limit: 5,
      windowMs: 86_400_000,
    })
    const both = new MultiLimiter([a, b])
    const results = await Promise.all(Array.from({ length: 100 }, () => both.limit('c')))
    expect(results.filter((r) => r.allowed)).toHaveLength(5)
    expect(await a.peek('c')).toMatchObject({ remaining: 2 })
    expect(await b.peek('c')).toMatchObject({ remaining: 0 })
  })

  it('denies a cost above any policy without consuming', async () => {
    const a = new RateLimiter({
      redis,
      prefix: uniquePrefix('a'),
      algorithm: 'sliding-log',
      limit: 10,
      windowMs: 60_000,
    })
    const b = new RateLimiter({
      redis,
      prefix: uniquePrefix('b'),
      algorithm: 'gcra',
      limit: 3,
      windowMs: 60_000,
    })
    const r = await new MultiLimiter([a, b]).limit('x', { cost: 4 })
    expect(r).toMatchObject({ allowed: false, reason: 'cost-exceeds-limit' })
    expect(await a.peek('x')).toMatchObject({ remaining: 10 })
  })

  it('rejects limiters that cannot be checked together', () => {
    const prefix = uniquePrefix('dup')
    const a = new RateLimiter({ redis, prefix, algorithm: 'gcra', limit: 1, windowMs: 1_000 })
    const same = new RateLimiter({ redis, prefix, algorithm: 'gcra', limit: 1, windowMs: 1_000 })
    expect(() => new MultiLimiter([a, same])).toThrow(/same prefix/)
    expect(() => new MultiLimiter([])).toThrow(InvalidArgumentError)
    expect(() => new MultiLimiter([{}] as never)).toThrow(/^limiters\[0\]/)
    expect(() => new MultiLimiter('x' as never)).toThrow(/^limiters/)
  })
})
