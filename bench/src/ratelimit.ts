import { createHash } from 'node:crypto'
import { keyspace, scanKeys } from '@rp/core'
import { ALGORITHM_NAMES, type Algorithm, RateLimiter } from '@rp/ratelimit'
import { Ratelimit } from '@upstash/ratelimit'
import type { Redis } from 'ioredis'
import RedisStore from 'rate-limit-redis'
import { RateLimiterRedis } from 'rate-limiter-flexible'
import type { Contender, Context } from './compare.js'
import { captureBatch, floorOp } from './floor.js'

export const KEYS = 1_000
const LIMIT = 100
const WINDOW_MS = 60_000

/**
 * @upstash/ratelimit talks to Redis through @upstash/redis, an HTTP client for Upstash's REST API.
 * A single-region limiter only calls evalsha and eval, so this serves those two over ioredis: the
 * same scripts on the same server, without the HTTP hop that would only make it slower. Its scripts
 * open with a `#!lua flags=allow-key-locking` shebang that Redis 7.0 rejects, so the shebang is
 * stripped once and each script's own hash is mapped to the stripped script's.
 */
function upstashClient(redis: Redis) {
  const loaded = new Map<string, string>()
  const sha1 = (text: string) => createHash('sha1').update(text).digest('hex')
  const argv = (keys: string[], args: unknown[]) => [keys.length, ...keys, ...args.map(String)] as const
  return {
    evalsha: (sha: string, keys: string[], args: unknown[]) =>
      redis.evalsha(loaded.get(sha) ?? sha, ...argv(keys, args)),
    eval: (script: string, keys: string[], args: unknown[]) => {
      const runnable = script.replace(/^\s*#!lua[^\n]*\n/, '')
      loaded.set(sha1(script), sha1(runnable))
      return redis.eval(runnable, ...argv(keys, args))
    },
  } as never
}

function upstashLimiter(redis: Redis, prefix: string, policy: Policy) {
  return new Ratelimit({
    redis: upstashClient(redis),
    prefix,
    limiter: Ratelimit.slidingWindow(policy.limit, `${policy.windowMs / 1000} s`),
    analytics: false,
  })
}

// The smallest script that does what a fixed-window limiter must: count and set the TTL atomically.
export const MINIMAL_LUA = `local n = redis.call('INCR', KEYS[1]) if n == 1 then redis.call('PEXPIRE', KEYS[1], ARGV[1]) end return n`

export interface Policy {
  limit: number
  windowMs: number
  /** Spend every key's whole limit before measuring, so every measured check is a denial. */
  exhaust: boolean
}

/** Every check admitted: no key comes near its limit in a whole run. */
// 10,000: the most a sliding log takes (one stored member per unit), and far above what a run sends per key.
export const ADMITTED: Policy = { limit: 10_000, windowMs: 60_000, exhaust: false }
/** Every check denied: keys spent to their limit first, in a window longer than the run. */
export const DENIED: Policy = { limit: 10, windowMs: 3_600_000, exhaust: true }

async function prepare(policy: Policy, op: (i: number) => Promise<unknown>) {
  if (policy.exhaust)
    for (let n = 0; n < policy.limit; n++)
      for (let i = 0; i < KEYS; i += 100) await Promise.all(Array.from({ length: 100 }, (_, j) => op(i + j)))
  return { op }
}

export function rateLimitContenders(policy: Policy): Contender[] {
  const { limit, windowMs } = policy
  const rp = (algorithm: Algorithm, blockCache?: { maxKeys: number }, batch = true): Contender => ({
    name: `@rp/ratelimit ${algorithm}${blockCache ? ' + blockCache' : ''}${batch ? '' : ' (batch: false)'}`,
    library: '@rp/ratelimit',
    settings: `RateLimiter { algorithm: '${algorithm}', limit: ${limit}, windowMs: ${windowMs}${blockCache ? `, blockCache: { maxKeys: ${blockCache.maxKeys} }` : ''}${batch ? '' : ', batch: false'} } (defaults: failure 'open', timeoutMs 1000)`,
    setup(redis, prefix) {
      const limiter = new RateLimiter({
        redis,
        prefix,
        algorithm,
        limit,
        windowMs,
        batch,
        ...(blockCache ? { blockCache } : {}),
      })
      return prepare(policy, (i) => limiter.limit(`k${i % KEYS}`))
    },
  })
  const flexible = (inMemoryBlock: boolean): Contender => ({
    name: `rate-limiter-flexible RateLimiterRedis${inMemoryBlock ? ' + inMemoryBlockOnConsumed' : ''}`,
    library: 'rate-limiter-flexible',
    settings: `RateLimiterRedis { storeClient: ioredis, points: ${limit}, duration: ${windowMs / 1000}${inMemoryBlock ? `, inMemoryBlockOnConsumed: ${limit}, inMemoryBlockDuration: ${windowMs / 1000}` : ''} } (its default Lua path)`,
    setup(redis, prefix) {
      const limiter = new RateLimiterRedis({
        storeClient: redis,
        points: limit,
        duration: windowMs / 1000,
        keyPrefix: prefix,
        ...(inMemoryBlock ? { inMemoryBlockOnConsumed: limit, inMemoryBlockDuration: windowMs / 1000 } : {}),
      })
      return prepare(policy, (i) => limiter.consume(`k${i % KEYS}`).catch(() => undefined))
    },
  })
  return [
    ...(policy.exhaust
      ? [rp('sliding-window'), rp('gcra'), rp('sliding-window', { maxKeys: 10_000 })]
      : [...ALGORITHM_NAMES.map((algorithm) => rp(algorithm)), rp('gcra', undefined, false)]),
    flexible(false),
    ...(policy.exhaust ? [flexible(true)] : []),
    {
      name: '@upstash/ratelimit slidingWindow',
      library: '@upstash/ratelimit',
      settings: `new Ratelimit({ redis, limiter: Ratelimit.slidingWindow(${limit}, '${windowMs / 1000} s') }) (defaults: ephemeral cache on, analytics off), its evalsha/eval served by ioredis, shebang stripped for Redis 7.0`,
      setup(redis, prefix) {
        const limiter = upstashLimiter(redis, prefix, policy)
        return prepare(policy, (i) => limiter.limit(`k${i % KEYS}`))
      },
    },
    {
      name: 'rate-limit-redis store (fixed window)',
      library: 'rate-limit-redis',
      settings: `RedisStore { sendCommand: ioredis.call }, init({ windowMs: ${windowMs} }), increment() driven directly`,
      setup(redis, prefix) {
        const store = new RedisStore({
          prefix: `${prefix}:`,
          sendCommand: (...args: string[]) => redis.call(args[0]!, ...args.slice(1)) as never,
        })
        store.init({ windowMs } as never)
        return prepare(policy, (i) => store.increment(`k${i % KEYS}`))
      },
    },
    ...(policy.exhaust
      ? []
      : [
          {
            name: '@rp gcra script, tick-batched from a raw ioredis client (the floor of batching)',
            library: 'baseline',
            floorOf: '@rp/ratelimit gcra',
            settings:
              "core's batch wrapper around ratelimit.gcra with @rp's own KEYS and ARGV, 16 calls per EVALSHA, raw replies: a batch's cost with no client path around it",
            async setup(redis: Redis, prefix: string, ctx: Context) {
              const batch = await captureBatch(ctx, async (capture) => {
                const limiter = new RateLimiter({
                  redis: capture,
                  prefix,
                  algorithm: 'gcra',
                  limit,
                  windowMs,
                })
                await Promise.all(Array.from({ length: 16 }, (_, i) => limiter.limit(`k${i}`)))
              })
              const first = batch.first.keys[0]!
              const op = await floorOp(redis, batch, (i) => [first.replace('{k0}', `{k${i % KEYS}}`)])
              return prepare(policy, op)
            },
          } satisfies Contender,
        ]),
    {
      name: 'raw ioredis EVALSHA (INCR + PEXPIRE script)',
      library: 'baseline',
      settings: 'one EVALSHA of a 2-command fixed-window script: the client-side floor',
      async setup(redis, prefix) {
        const sha = (await redis.script('LOAD', MINIMAL_LUA)) as string
        return prepare(policy, (i) => redis.evalsha(sha, 1, `${prefix}:k${i % KEYS}`, windowMs))
      },
    },
  ]
}

/** Memory per key: one key filled to its limit, measured with MEMORY USAGE. */
export async function rateLimitMemory(
  redis: Redis,
  admin: Redis,
): Promise<Array<{ name: string; bytesPerKey: number }>> {
  const out: Array<{ name: string; bytesPerKey: number }> = []
  for (const algorithm of ALGORITHM_NAMES) {
    const prefix = `mem-${algorithm}`
    const limiter = new RateLimiter({ redis, prefix, algorithm, limit: LIMIT, windowMs: WINDOW_MS })
    for (let i = 0; i < LIMIT; i++) await limiter.limit('mem')
    // The key also names the policy; find it through the keyspace rather than spelling it out.
    let bytes = 0
    for await (const keys of scanKeys(admin, { match: keyspace(prefix).pattern('mem') }))
      for (const key of keys) bytes += Number(await admin.memory('USAGE', key, 'SAMPLES', '0'))
    out.push({ name: `@rp/ratelimit ${algorithm}`, bytesPerKey: bytes })
  }
  const flexible = new RateLimiterRedis({
    storeClient: redis,
    points: LIMIT,
    duration: WINDOW_MS / 1000,
    keyPrefix: 'mem-rlf',
  })
  for (let i = 0; i < LIMIT; i++) await flexible.consume('mem').catch(() => undefined)
  out.push({
    name: 'rate-limiter-flexible RateLimiterRedis',
    bytesPerKey: Number(await admin.memory('USAGE', 'mem-rlf:mem', 'SAMPLES', '0')),
  })
  const upstash = upstashLimiter(redis, 'mem-up', { limit: LIMIT, windowMs: WINDOW_MS, exhaust: false })
  for (let i = 0; i < LIMIT; i++) await upstash.limit('mem')
  // Its sliding window keeps one key per window: count what this identifier holds now.
  let upstashBytes = 0
  for await (const keys of scanKeys(admin, { match: 'mem-up:mem:*' }))
    for (const key of keys) upstashBytes += Number(await admin.memory('USAGE', key, 'SAMPLES', '0'))
  out.push({ name: '@upstash/ratelimit slidingWindow', bytesPerKey: upstashBytes })
  return out
}
