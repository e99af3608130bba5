import { subscribe, unsubscribe } from 'node:diagnostics_channel'
import { EVENT_CHANNEL, parseInfo, RedisOutOfMemoryError, RedisUnavailableError, ScriptError } from '@rp/core'
import { MAX_BATCH_CALLS } from '@rp/core/kit'
import { type RedisServer, startRedis } from '@rp/testing'
import { fillToMaxmemory } from '@rp/testing/vitest'
import { Redis } from 'ioredis'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { ALGORITHM_NAMES } from './algorithms/index.js'
import { ConcurrencyLimiter } from './concurrency-limiter.js'
import { RateLimiter } from './limiter.js'
import { MultiLimiter } from './multi-limiter.js'
import type { FailurePolicy } from './options.js'
import type { RateLimitResult } from './result.js'

let server: RedisServer
let redis: Redis
const unhandled: unknown[] = []
const onUnhandled = (reason: unknown) => unhandled.push(reason)

beforeAll(async () => {
  server = await startRedis({ ownServer: true })
  redis = new Redis(server.url, { maxRetriesPerRequest: 1, retryStrategy: () => 50 }).on('error', () => {})
  process.on('unhandledRejection', onUnhandled)
})
afterAll(async () => {
  process.off('unhandledRejection', onUnhandled)
  redis.disconnect()
  await server.stop()
})

async function timed(limiter: RateLimiter, key: string): Promise<{ result: RateLimitResult; ms: number }> {
  const started = performance.now()
  const result = await limiter.limit(key)
  return { result, ms: performance.now() - started }
}

const cases: Array<[string, FailurePolicy, (r: RateLimitResult) => void]> = [
  ['open', 'open', (r) => expect(r).toMatchObject({ allowed: true, source: 'fail-open' })],
  [
    'closed',
    'closed',
    (r) => expect(r).toMatchObject({ allowed: false, source: 'fail-closed', reason: 'redis-unavailable' }),
  ],
  ['memory', { fallback: 'memory' }, (r) => expect(r.source).toBe('memory')],
]

describe('failure policies during a real outage', () => {
  it.each(cases)(
    '%s: answers by policy within timeoutMs while Redis is dead, and recovers after restart',
    async (_, failure, check) => {
      const limiter = new RateLimiter({
        redis,
        prefix: 'fail',
        algorithm: 'gcra',
        limit: 1_000,
        windowMs: 60_000,
        failure,
        timeoutMs: 250,
      })
      const load = Array.from({ length: 20 }, (_, i) => limiter.limit(`k${i % 4}`))
      expect((await Promise.all(load)).every((r) => r.source === 'redis')).toBe(true)

      // Kill in the middle of a load: calls in flight and calls made afterwards all settle by policy.
      const inFlight = Array.from({ length: 50 }, (_, i) => limiter.limit(`k${i % 4}`))
      await server.kill()
      const during = await Promise.all([
        ...inFlight,
        ...Array.from({ length: 20 }, () => limiter.limit('k0')),
      ])
      // Calls Redis answered before it died stand; every other one was decided by the policy.
      for (const r of during) if (r.source !== 'redis') check(r)
      expect(during.some((r) => r.source !== 'redis')).toBe(true)
      for (let i = 0; i < 10; i++) {
        const { result, ms } = await timed(limiter, 'k1')
        check(result)
        expect(ms).toBeLessThan(250 + 150)
      }

      await server.restart()
      const deadline = Date.now() + 10_000
      let recovered: RateLimitResult | undefined
      while (Date.now() < deadline) {
        recovered = await limiter.limit('k2')
        if (recovered.source === 'redis') break
        await new Promise((r) => setTimeout(r, 50))
      }
      expect(recovered?.source).toBe('redis')
      expect(unhandled).toEqual([])
    },
  )

  it('the memory fallback still enforces the limit per process', async () => {
    const limiter = new RateLimiter({
      redis,
      prefix: 'mem',
      algorithm: 'fixed-window',
      limit: 3,
      windowMs: 60_000,
      failure: { fallback: 'memory' },
      timeoutMs: 200,
    })
    await server.kill()
    const results = []
    for (let i = 0; i < 5; i++) results.push(await limiter.limit('m'))
    expect(results.map((r) => [r.allowed, r.source])).toEqual([
      [true, 'memory'],
      [true, 'memory'],
      [true, 'memory'],
      [false, 'memory'],
      [false, 'memory'],
    ])
    await server.restart()
  })

  it.each(cases)(
    'returns within timeoutMs while Redis is paused (SIGSTOP): %s',
    async (name, failure, check) => {
      await waitReady()
      const limiter = new RateLimiter({
        redis,
        prefix: `pause-${name}`,
        algorithm: 'sliding-window',
        limit: 10,
        windowMs: 1_000,
        failure,
        timeoutMs: 200,
      })
      const multi = new MultiLimiter([
        limiter,
        new RateLimiter({ redis, prefix: `pause2-${name}`, algorithm: 'gcra', limit: 5, windowMs: 1_000 }),
      ])
      expect((await limiter.limit('p')).source).toBe('redis')
      await server.pause()
      try {
        const started = performance.now()
        const [single, both] = await Promise.all([limiter.limit('p'), multi.limit('p')])
        expect(performance.now() - started).toBeLessThan(200 + 150)
        check(single)
        // The MultiLimiter applies the same policy, memory fallback included: no silent downgrade.
        check(both)
      } finally {
        await server.resume()
      }
      expect(unhandled).toEqual([])
    },
  )

  it('a lease release that failed can be retried, and then frees the slot', async () => {
    await waitReady()
    const client = new Redis(server.url, { enableOfflineQueue: false, lazyConnect: true })
    await client.connect()
    const slots = new ConcurrencyLimiter({
      redis: client,
      prefix: 'retry',
      limit: 1,
      leaseMs: 30_000,
      timeoutMs: 200,
    })
    const lease = await slots.acquire('job')
    // A blip: the connection is gone when the release is sent.
    client.disconnect()
    await expect(lease.release()).rejects.toBeInstanceOf(RedisUnavailableError)
    while (client.status !== 'end') await new Promise((r) => setTimeout(r, 5))
    await client.connect()
    expect(await lease.release()).toBe('released')
    expect(await slots.active('job')).toBe(0)
    await slots.close()
    client.disconnect()
  })
})

describe('a master demoted by a failover (READONLY)', () => {
  it('is Redis trouble, not data: the failure policy decides', async () => {
    const replica = await startRedis({ ownServer: true })
    const client = new Redis(replica.url, { maxRetriesPerRequest: 1 }).on('error', () => {})
    try {
      // The client stays connected to a server that became a replica: every write is refused.
      await client.replicaof(server.host, String(server.port))
      for (const [name, failure, check] of cases) {
        const limiter = new RateLimiter({
          redis: client,
          algorithm: 'gcra',
          limit: 5,
          windowMs: 60_000,
          prefix: `ro-${name}`,
          failure,
        })
        check(await limiter.limit('k'))
      }
      expect(unhandled).toEqual([])
    } finally {
      client.disconnect()
      await replica.stop()
    }
  })
})

describe('a key of the wrong type (another tool wrote it)', () => {
  async function poison(prefix: string): Promise<void> {
    const [, found] = await redis.scan('0', 'MATCH', `${prefix}:*`, 'COUNT', 1_000)
    expect(found.length).toBeGreaterThan(0)
    for (const key of found) {
      await redis.del(key)
      await redis.rpush(key, 'x')
    }
  }

  it('fails that key with ScriptError under every policy, never the failure policy', async () => {
    const events: unknown[] = []
    const onEvent = (e: unknown) => events.push(e)
    subscribe(EVENT_CHANNEL, onEvent)
    try {
      for (const algorithm of ALGORITHM_NAMES)
        for (const [name, failure] of cases.map(([n, f]) => [n, f] as const)) {
          const prefix = `poison-${algorithm}-${name}`
          const limiter = new RateLimiter({ redis, algorithm, limit: 5, windowMs: 60_000, prefix, failure })
          await limiter.limit('victim')
          await poison(prefix)
          await expect(limiter.limit('victim')).rejects.toBeInstanceOf(ScriptError)
          await expect(limiter.limit('victim')).rejects.toThrow(/WRONGTYPE/)
          // Other keys of the same limiter still count against Redis.
          expect(await limiter.limit('healthy')).toMatchObject({ allowed: true, source: 'redis' })
          const multi = new MultiLimiter([limiter])
          await expect(multi.limit('victim')).rejects.toBeInstanceOf(ScriptError)
        }
    } finally {
      unsubscribe(EVENT_CHANNEL, onEvent)
    }
    expect(events.filter((e) => (e as { event?: string }).event === 'failure-policy')).toEqual([])
    expect(unhandled).toEqual([])
  })
})

describe('at maxmemory (noeviction)', () => {
  it('a sliding-log limit and a concurrency lease are refused, and used memory does not grow', async () => {
    const own = await startRedis({
      ownServer: true,
      args: ['--maxmemory', '2mb', '--maxmemory-policy', 'noeviction'],
    })
    const client = new Redis(own.url)
    try {
      await fillToMaxmemory(client)
      const used = Number(parseInfo(await client.info('memory')).used_memory)
      // Filled to just past the limit, memory can dip under it by a few kB (a client buffer freed),
      // and a lease written then is Redis accepting it, not @rp failing open: a margin keeps it full.
      await client.config('SET', 'maxmemory', String(used - 262_144))
      const log = new RateLimiter({
        redis: client,
        algorithm: 'sliding-log',
        limit: 10_000,
        windowMs: 60_000,
        failure: 'closed',
      })
      const slots = new ConcurrencyLimiter({ redis: client, limit: 1_000_000, leaseMs: 60_000 })
      // Under either policy: Redis answered no, so a lease never fails open.
      const open = new ConcurrencyLimiter({
        redis: client,
        limit: 1_000_000,
        leaseMs: 60_000,
        failure: 'open',
      })
      for (let i = 0; i < 20; i++) {
        expect(await log.limit(`k${i}`, { cost: 500 })).toMatchObject({
          allowed: false,
          source: 'fail-closed',
        })
        await expect(slots.tryAcquire(`k${i}`)).rejects.toBeInstanceOf(RedisOutOfMemoryError)
        await expect(open.tryAcquire(`k${i}`)).rejects.toBeInstanceOf(RedisOutOfMemoryError)
      }
      await open.close()
      expect(Number(parseInfo(await client.info('memory')).used_memory)).toBeLessThan(used + 100_000)
      await slots.close()
    } finally {
      client.disconnect()
      await own.stop()
    }
  })
})

async function waitReady(): Promise<void> {
  const deadline = Date.now() + 10_000
  while (redis.status !== 'ready' && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20))
}

describe('one command per check', () => {
  // With batching (the default) a tick's checks share one EVALSHA; with batch: false each check is
  // one. Either way TIME runs once per check: each keeps its own atomic step on the server clock.
  it.each(ALGORITHM_NAMES.flatMap((algorithm) => [true, false].map((batch) => [algorithm, batch] as const)))(
    '%s (batch: %s) sends one script call per check, or per batch of a tick when batched',
    async (algorithm, batch) => {
      await waitReady()
      const limiter = new RateLimiter({
        redis,
        prefix: `cmd-${algorithm}-${batch}`,
        algorithm,
        limit: 500,
        windowMs: 60_000,
        batch,
      })
      await redis.script('FLUSH')
      await redis.config('RESETSTAT')
      // The first call alone: concurrent calls sent before the NOSCRIPT reply would each need EVAL.
      await limiter.limit('user0')
      for (let round = 0; round < 9; round++) {
        await Promise.all(Array.from({ length: 111 }, (_, i) => limiter.limit(`user${i % 50}`)))
      }
      const stats = parseInfo(await redis.info('commandstats'))
      const calls = Object.fromEntries(
        Object.entries(stats).map(([name, value]) => [
          name.replace('cmdstat_', ''),
          Number(/calls=(\d+)/.exec(value)![1]),
        ]),
      )
      const failed = Number(/failed_calls=(\d+)/.exec(stats.cmdstat_evalsha ?? '')?.[1] ?? 0)
      // commandstats also counts what scripts call inside Redis; TIME runs once per script execution.
      // Script calls that ran (EVALSHA that did not answer NOSCRIPT, and EVAL, which a client's first
      // call of a script is): batched, the lone first call, then ceil(111 / MAX_BATCH_CALLS) per round.
      const perRound = Math.ceil(111 / MAX_BATCH_CALLS)
      expect(calls.evalsha! - failed + (calls.eval ?? 0)).toBe(batch ? 1 + 9 * perRound : 1_000)
      expect(calls.eval ?? 0).toBeLessThanOrEqual(batch ? 1 + perRound : 1)
      // The calls of a batch share one reading of the server clock.
      expect(calls.time).toBe(batch ? 1 + 9 * perRound : 1_000)
      const fromScripts = [
        'time',
        'zscore',
        'hmget',
        'hset',
        'hincrby',
        'pexpireat',
        'pexpire',
        'get',
        'set',
        'zcount',
        'zadd',
        'zremrangebyscore',
        'zrangebyscore',
        'zrange',
      ]
      const others = Object.keys(calls).filter(
        (c) => !['evalsha', 'eval', 'info', 'config|resetstat', ...fromScripts].includes(c),
      )
      expect(others).toEqual([])
    },
  )
})
