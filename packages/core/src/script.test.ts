import { startCluster, startRedis } from '@rp/testing'
import { describeEachTarget, eventually, fillToMaxmemory, uniquePrefix } from '@rp/testing/vitest'
import { Cluster, Redis } from 'ioredis'
import { describe, expect, it } from 'vitest'
import { masters } from './client.js'
import { InvalidArgumentError, RedisOutOfMemoryError, ScriptError } from './errors.js'
import { keyspace } from './keys.js'
import { defineScript } from './script.js'

// KEYS[1], KEYS[2]: two counters sharing a hash tag. ARGV[1]: increment. Reply: {a, b}.
const incrBoth = defineScript({
  name: 'test.incrBoth',
  keys: 2,
  lua: `
    local a = redis.call('INCRBY', KEYS[1], ARGV[1])
    local b = redis.call('INCRBY', KEYS[2], ARGV[1])
    return {a, b}`,
  decode: (raw) => {
    const [a, b] = raw as [number, number]
    return { a, b }
  },
})

const failing = defineScript({ name: 'test.failing', keys: 0, lua: `return redis.error_reply('boom')` })

async function cached(redis: Redis | Cluster): Promise<boolean[]> {
  return Promise.all(
    (await masters(redis)).map(async (n) => ((await n.script('EXISTS', incrBoth.sha)) as number[])[0] === 1),
  )
}

describeEachTarget('defineScript', (target) => {
  const ks = keyspace(uniquePrefix('script'))

  it('runs with a typed reply', async () => {
    const redis = target.client()
    const keys = [ks.key('x', 'a'), ks.key('x', 'b')]
    expect(await incrBoth.run(redis, keys, [2])).toEqual({ a: 2, b: 2 })
    expect(await incrBoth.run(redis, keys, [3])).toEqual({ a: 5, b: 5 })
  })

  it('recovers from SCRIPT FLUSH on every node through EVAL, then caches again', async () => {
    const redis = target.client()
    // Touch every master so the script is cached everywhere before the flush.
    const tags = Array.from({ length: 30 }, (_, i) => `t${i}`)
    for (const t of tags) await incrBoth.run(redis, [ks.key(t, 'a'), ks.key(t, 'b')], [1])
    await Promise.all((await masters(redis)).map((n) => n.script('FLUSH')))
    expect((await cached(redis)).every((c) => !c)).toBe(true)
    for (const t of tags)
      expect(await incrBoth.run(redis, [ks.key(t, 'a'), ks.key(t, 'b')], [1])).toEqual({ a: 2, b: 2 })
    expect((await cached(redis)).every(Boolean)).toBe(true)
  })

  it('rejects the wrong number of keys before calling Redis', async () => {
    const redis = target.client()
    await expect(incrBoth.run(redis, ['only-one'])).rejects.toBeInstanceOf(InvalidArgumentError)
  })

  it('reports script failures as ScriptError with the script name', async () => {
    const redis = target.client()
    await expect(failing.run(redis, [])).rejects.toThrow(ScriptError)
    await expect(failing.run(redis, [])).rejects.toThrow(/test\.failing.*boom/)
  })
})

describe('defineScript across server loss', () => {
  it('recovers after the standalone server restarts with an empty script cache', async () => {
    const server = await startRedis({ ownServer: true })
    const redis = new Redis(server.url, { maxRetriesPerRequest: 20, retryStrategy: () => 50 }).on(
      'error',
      () => {},
    )
    try {
      const keys = ['r:{x}:a', 'r:{x}:b']
      await incrBoth.run(redis, keys, [1])
      await server.restart()
      await eventually(() => redis.status === 'ready', 10_000, 'reconnect')
      expect(await incrBoth.run(redis, keys, [1])).toEqual({ a: 1, b: 1 })
    } finally {
      redis.disconnect()
      await server.stop()
    }
  })

  it('recovers on a promoted replica after a cluster master dies', async () => {
    const cluster = await startCluster({ masters: 3, replicas: 1 })
    const redis = new Cluster([...cluster.nodes], {
      redisOptions: { maxRetriesPerRequest: 1 },
      clusterRetryStrategy: () => 100,
    }).on('error', () => {})
    try {
      // Hash tag "{a}" lives in slot 15495, served by the third master.
      const keys = ['f:{a}:1', 'f:{a}:2']
      expect(await incrBoth.run(redis, keys, [1])).toEqual({ a: 1, b: 1 })
      await cluster.waitForReplication()
      await cluster.killMaster(15495)
      await cluster.waitForFailover()
      let reply: { a: number; b: number } | undefined
      await eventually(
        async () => {
          reply = await incrBoth.run(redis, keys, [1]).catch(() => undefined)
          return reply !== undefined
        },
        20_000,
        'the script to run on the promoted replica',
      )
      // The replica had the data (replicated) but not the script (never loaded there).
      expect(reply).toEqual({ a: 2, b: 2 })
    } finally {
      redis.disconnect()
      await cluster.stop()
    }
  }, 60_000)
})

describe('defineScript at maxmemory', () => {
  // The first write is ZREMRANGEBYSCORE, which Redis does not check for OOM: without the shebang
  // line the ZADDs after it went on writing past maxmemory.
  const grow = defineScript<number>({
    name: 'test.grow',
    keys: 1,
    lua: `redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', 0)
for i = 1, 200 do redis.call('ZADD', KEYS[1], i, ARGV[1] .. i) end
return redis.call('ZCARD', KEYS[1])`,
  })
  const count = defineScript<number>({
    name: 'test.count',
    keys: 1,
    flags: ['no-writes'],
    lua: `return redis.call('ZCARD', KEYS[1])`,
  })
  const drop = defineScript<number>({
    name: 'test.drop',
    keys: 1,
    flags: ['allow-oom'],
    lua: `return redis.call('DEL', KEYS[1])`,
  })

  it('refuses a writing script with RedisOutOfMemoryError, while reads and deletes still run', async () => {
    const server = await startRedis({
      ownServer: true,
      args: ['--maxmemory', '2mb', '--maxmemory-policy', 'noeviction'],
    })
    const redis = new Redis(server.url)
    try {
      await fillToMaxmemory(redis)
      const used = Number(/used_memory:(\d+)/.exec(await redis.info('memory'))![1])
      const error = await grow.run(redis, ['z:{a}'], ['m']).catch((e: unknown) => e)
      expect(error).toBeInstanceOf(RedisOutOfMemoryError)
      expect(await redis.exists('z:{a}')).toBe(0)
      expect(Number(/used_memory:(\d+)/.exec(await redis.info('memory'))![1])).toBeLessThan(used + 50_000)
      expect(await count.run(redis, ['z:{a}'])).toBe(0)
      expect(await drop.run(redis, ['fill:0'])).toBe(1)
    } finally {
      redis.disconnect()
      await server.stop()
    }
  })
})
