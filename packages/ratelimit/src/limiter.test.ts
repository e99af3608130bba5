import { escapeGlobPart, InvalidArgumentError, keyspace, scanKeys } from '@rp/core/kit'
import { describeEachTarget, expectInvalidArguments, uniquePrefix } from '@rp/testing/vitest'
import fc from 'fast-check'
import { Redis } from 'ioredis'
import { describe, expect, it } from 'vitest'
import { ALGORITHM_NAMES, type Algorithm } from './algorithms/index.js'
import { RateLimiter } from './limiter.js'
import type { RateLimiterOptions } from './options.js'

const DAY = 86_400_000

describeEachTarget('RateLimiter', (target) => {
  const redis = target.client()
  const make = (algorithm: Algorithm, limit: number, windowMs = DAY, extra: { burst?: number } = {}) =>
    // Any algorithm picked at run time: the options union is only checked for literal algorithms.
    new RateLimiter({
      redis,
      prefix: uniquePrefix('rl'),
      algorithm,
      limit,
      windowMs,
      ...extra,
    } as RateLimiterOptions)

  it.each(ALGORITHM_NAMES)(
    '%s: limiters with different policies never share state, even with one prefix',
    async (algorithm) => {
      const prefix = uniquePrefix('share')
      const perHour = new RateLimiter({ redis, prefix, algorithm, limit: 5, windowMs: 3_600_000 })
      const perSecond = new RateLimiter({ redis, prefix, algorithm, limit: 5, windowMs: 1_000 })
      const moreLimit = new RateLimiter({ redis, prefix, algorithm, limit: 6, windowMs: 3_600_000 })
      for (let i = 0; i < 5; i++) expect((await perHour.limit('k')).allowed).toBe(true)
      await perSecond.reset('k')
      await perSecond.limit('k')
      expect(await moreLimit.peek('k')).toMatchObject({ remaining: 6 })
      expect(await perHour.limit('k')).toMatchObject({ allowed: false, remaining: 0 })
    },
  )

  describe.each(ALGORITHM_NAMES)('%s', (algorithm) => {
    it('admits exactly up to the limit under 200 concurrent callers, never more', async () => {
      await fc.assert(
        fc.asyncProperty(
          fc.integer({ min: 1, max: 40 }),
          fc.array(fc.integer({ min: 1, max: 3 }), { minLength: 200, maxLength: 200 }),
          async (limit, costs) => {
            const limiter = make(algorithm, limit)
            const results = await Promise.all(costs.map((cost) => limiter.limit('k', { cost })))
            const admitted = results.reduce((sum, r, i) => sum + (r.allowed ? costs[i]! : 0), 0)
            expect(admitted).toBeLessThanOrEqual(limit)
            // Nothing was turned away while it still fitted: every denied cost exceeds what is left.
            results.forEach((r, i) => {
              if (!r.allowed) {
                expect(r.source).toBe('redis')
                expect(costs[i]!).toBeGreaterThan(limit - admitted)
              }
            })
          },
        ),
        { numRuns: 12 },
      )
    })

    it('recovers across windows: a drained key is admitted again, and no more than the windows allow', async () => {
      await fc.assert(
        fc.asyncProperty(fc.integer({ min: 1, max: 4 }), async (limit) => {
          const windowMs = 200
          const limiter = make(algorithm, limit, windowMs)
          const started = performance.now()
          let admitted = 0
          // Hammered every 5 ms for 3.5 windows: a sliding window's weighted previous count may hold
          // a drained key back for up to two windows, after which it must be admitted again.
          while (performance.now() - started < 3.5 * windowMs) {
            if ((await limiter.limit('k')).allowed) admitted++
            await new Promise((res) => setTimeout(res, 5))
          }
          const windows = Math.ceil((performance.now() - started) / windowMs)
          // Fixed windows may admit a full limit on each side of a boundary; the others less.
          expect(admitted).toBeLessThanOrEqual(limit * (windows + 1))
          expect(admitted).toBeGreaterThan(limit)
        }),
        { numRuns: 2 },
      )
    })

    it('leaves state untouched when it denies, and puts a TTL on every key', async () => {
      const limiter = make(algorithm, 3, 60_000)
      for (let i = 0; i < 3; i++) expect((await limiter.limit('user')).allowed).toBe(true)
      await limiter.block('other', 5_000)
      const ks = keyspace(limiter.options.prefix)
      const stateKeys: string[] = []
      for await (const batch of scanKeys(redis, { match: ks.pattern(escapeGlobPart('user')) }))
        stateKeys.push(...batch)
      expect(stateKeys).toHaveLength(1)
      const state = stateKeys[0]!
      const before = await redis.dump(state)
      expect(before).not.toBeNull()
      const ttlBefore = await redis.pttl(state)
      const denied = await limiter.limit('user', { cost: 2 })
      expect(denied).toMatchObject({ allowed: false, remaining: 0, reason: 'limit', source: 'redis' })
      expect(denied.retryAfterMs).toBeGreaterThan(0)
      expect(await redis.dump(state)).toEqual(before)
      expect(await redis.pttl(state)).toBeLessThanOrEqual(ttlBefore)
      const keys: string[] = []
      for await (const batch of scanKeys(redis, { match: ks.pattern() })) keys.push(...batch)
      expect(keys.length).toBe(2)
      for (const key of keys) {
        const ttl = await redis.pttl(key)
        expect(ttl).toBeGreaterThan(0)
        // The sliding window keeps the previous window's count, so it lives up to two windows.
        expect(ttl).toBeLessThanOrEqual(algorithm === 'sliding-window' ? 120_000 : 60_000)
      }
    })

    it('denies a cost above the limit with a reason, without touching state', async () => {
      const limiter = make(algorithm, 5, 60_000)
      const r = await limiter.limit('big', { cost: 6 })
      expect(r).toMatchObject({ allowed: false, reason: 'cost-exceeds-limit', remaining: 5 })
      expect(r.retryAfterMs).toBe(Number.POSITIVE_INFINITY)
      expect(await redis.exists(keyspace(limiter.options.prefix).key('big', algorithm))).toBe(0)
      expect((await limiter.limit('big', { cost: 5 })).allowed).toBe(true)
    })

    it('peek does not consume; reward gives back; block denies; reset forgets', async () => {
      const limiter = make(algorithm, 2, 60_000)
      expect(await limiter.peek('p')).toMatchObject({ allowed: true, remaining: 2 })
      await limiter.limit('p')
      await limiter.limit('p')
      expect(await limiter.peek('p')).toMatchObject({ allowed: false, remaining: 0 })
      expect((await limiter.limit('p')).allowed).toBe(false)
      await limiter.reward('p', 1)
      expect((await limiter.limit('p')).allowed).toBe(true)
      await limiter.reset('p')
      await limiter.block('p', 10_000)
      const blocked = await limiter.limit('p')
      expect(blocked).toMatchObject({ allowed: false, reason: 'blocked' })
      expect(blocked.retryAfterMs).toBeGreaterThan(9_000)
      await limiter.reset('p')
      expect(await limiter.limit('p')).toMatchObject({ allowed: true, remaining: 1 })
    })
  })

  it('gcra spaces requests evenly after the burst, on the server clock', async () => {
    const limiter = make('gcra', 10, 1_000, { burst: 3 })
    const first = await Promise.all([1, 2, 3, 4].map(() => limiter.limit('g')))
    expect(first.filter((r) => r.allowed)).toHaveLength(3)
    const denied = first.find((r) => !r.allowed)!
    expect(denied.retryAfterMs).toBeGreaterThan(0)
    expect(denied.retryAfterMs).toBeLessThanOrEqual(100)
    await new Promise((r) => setTimeout(r, denied.retryAfterMs + 5))
    expect((await limiter.limit('g')).allowed).toBe(true)
  })

  it('keeps state beyond 2^53 µs exact enough: a huge burst over a long window is one admitted request', async () => {
    // TAT = now + 4.7e6 × 2e9 ms: past 2^63 µs, where printing it as a C long would wrap negative.
    const limiter = make('gcra', 1, 2_000_000_000, { burst: 5_000_000 })
    expect((await limiter.limit('huge', { cost: 4_700_000 })).allowed).toBe(true)
    const next = await limiter.limit('huge')
    expect(next.allowed).toBe(true)
    expect(next.remaining).toBeLessThan(300_000)
  })

  it('token bucket refills continuously', async () => {
    const limiter = make('token-bucket', 20, 1_000, { burst: 2 })
    expect((await limiter.limit('t', { cost: 2 })).allowed).toBe(true)
    const denied = await limiter.limit('t')
    expect(denied.allowed).toBe(false)
    expect(denied.retryAfterMs).toBeLessThanOrEqual(50)
    await new Promise((r) => setTimeout(r, denied.retryAfterMs + 5))
    expect((await limiter.limit('t')).allowed).toBe(true)
  })

  // A batch reads the server clock once, so its later calls run on a reading that is as old as the
  // calls before them took (a sliding-log check of cost 10,000 takes milliseconds). An expiry set as
  // an absolute time from that reading could already be past, and Redis 7.0 deletes such a key at
  // once: the count would be lost, and every later call of the batch admitted.
  it.each(['fixed-window', 'sliding-window'] as const)(
    '%s counts every call of a batch that runs past its window end',
    async (algorithm) => {
      const key = `edge-${algorithm}` // one hash tag for both limiters: one slot, one batch
      const slow = make('sliding-log', 10_000)
      const limited = make(algorithm, 1, 1)
      const results = await Promise.all([
        slow.limit(key, { cost: 10_000 }),
        ...Array.from({ length: 10 }, () => limited.limit(key)),
      ])
      expect(results[0]!.allowed).toBe(true)
      expect(results.slice(1).filter((r) => r.allowed)).toHaveLength(1)
    },
  )

  it('fixed window resets at the aligned window end', async () => {
    const limiter = make('fixed-window', 1, 200)
    // Sent together, the two run in one batch, microseconds apart on the server clock: two calls a
    // round trip apart could straddle a window edge on a loaded machine, and both be admitted.
    const [first, denied] = await Promise.all([limiter.limit('f'), limiter.limit('f')])
    expect(first.allowed).toBe(true)
    expect(denied.allowed).toBe(false)
    expect(denied.resetAt % 200).toBe(0)
    await new Promise((r) => setTimeout(r, denied.retryAfterMs + 5))
    expect((await limiter.limit('f')).allowed).toBe(true)
  })

  it('sliding log is exact over any window', async () => {
    const limiter = make('sliding-log', 2, 300)
    await limiter.limit('s')
    await new Promise((r) => setTimeout(r, 150))
    await limiter.limit('s')
    const denied = await limiter.limit('s')
    expect(denied.allowed).toBe(false)
    // The first entry leaves the window ~150 ms from now, not at a window boundary.
    expect(denied.retryAfterMs).toBeGreaterThan(100)
    expect(denied.retryAfterMs).toBeLessThanOrEqual(160)
  })
})

describe('RateLimiter options', () => {
  it('caps the sliding log, so one call cannot make Redis store and scan millions of members', () => {
    const redis = new Redis({ lazyConnect: true })
    expect(() => new RateLimiter({ redis, algorithm: 'sliding-log', limit: 1e9, windowMs: 1_000 })).toThrow(
      /^limit: .*sliding-window/,
    )
    expect(
      () => new RateLimiter({ redis, algorithm: 'sliding-log', limit: 10_000, windowMs: 1_000 }),
    ).not.toThrow()
    expect(
      () => new RateLimiter({ redis, algorithm: 'sliding-window', limit: 1e9, windowMs: 1_000 }),
    ).not.toThrow()
    expect(
      () => new RateLimiter({ redis, algorithm: 'gcra', limit: 1, windowMs: 1_000, batch: 'yes' as never }),
    ).toThrow(/^batch:/)
  })

  // A real client that never connects: validation must fail before any I/O.
  const redis = new Redis({ lazyConnect: true })
  const base = { redis, algorithm: 'gcra' as const, limit: 10, windowMs: 1_000 }

  it.each([
    ['limit', { limit: 0 }],
    ['limit', { limit: Number.NaN }],
    ['limit', { limit: 1.5 }],
    ['windowMs', { windowMs: 0 }],
    ['windowMs', { windowMs: -5 }],
    ['algorithm', { algorithm: 'leaky' }],
    ['burst', { algorithm: 'fixed-window', burst: 3 }],
    ['failure', { failure: 'sometimes' }],
    // Described, not JSON-encoded: JSON.stringify throws a raw TypeError on a BigInt.
    ['failure', { failure: 10n }],
  ])('rejects a bad %s', (name, patch) => {
    expect(() => new RateLimiter({ ...base, ...(patch as object) })).toThrow(InvalidArgumentError)
    expect(() => new RateLimiter({ ...base, ...(patch as object) })).toThrow(new RegExp(`^${name}:`))
  })

  it('rejects bad costs and keys per call', async () => {
    const limiter = new RateLimiter(base)
    // Promise functions reject, never throw, and name the option.
    const calls: Array<[() => Promise<unknown>, RegExp]> = [
      [() => limiter.limit(''), /^key: must be a non-empty string/],
      [() => limiter.limit('k', { cost: 0 }), /^cost: must be a positive integer/],
      [() => limiter.limit('k', { cost: 1.5 }), /^cost/],
      [() => limiter.limit('k', null as never), /^options/],
      [() => limiter.peek(''), /^key/],
      [() => limiter.reset(''), /^key/],
      [() => limiter.block('k', Number.NaN), /^ms/],
      [() => limiter.reward('k', 0), /^units/],
    ]
    await expectInvalidArguments(calls)
  })
})
