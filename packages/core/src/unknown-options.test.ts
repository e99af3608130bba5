import { Redis } from 'ioredis'
import { afterAll, expect, it } from 'vitest'
import { createRedis, resolveConnection } from './connection.js'
import { health } from './health.js'
import { memory } from './memory.js'
import { deleteByPattern, scanKeys } from './scan.js'
import { defineScript } from './script.js'
import { installShutdownHandlers, shutdown } from './shutdown.js'

// A misspelt option must be refused, not silently replaced by its default. Nothing here reaches Redis.
const redis = new Redis({ lazyConnect: true })
afterAll(() => redis.disconnect())

it('refuses misspelt connection and shutdown-handler options, naming them', () => {
  expect(() => resolveConnection({ commandTimeout: 5 } as never)).toThrow(
    /commandTimeout: is not a known option/,
  )
  expect(() => createRedis({ url: 'redis://127.0.0.1:1', reconnect: { base: 5 } } as never)).toThrow(
    /reconnect\.base: is not a known option/,
  )
  expect(() => installShutdownHandlers(redis, { timeout: 5 } as never)).toThrow(
    /timeout: is not a known option/,
  )
  expect(() =>
    resolveConnection({ sentinels: [{ host: 'a', port: 1, weight: 2 }], sentinelName: 'm' } as never),
  ).toThrow(/sentinels\[0\]\.weight: is not a known option/)
  expect(() => defineScript({ name: 't.x', keys: 0, lua: 'return 1', flag: ['no-writes'] } as never)).toThrow(
    /flag: is not a known option/,
  )
  expect(() => defineScript({ name: 't.x', keys: 0, lua: 'return 1', setup: 42 } as never)).toThrow(
    /setup: must be a string/,
  )
  expect(() => defineScript({ name: 't.x', keys: 0, lua: undefined } as never)).toThrow(/lua:/)
})

it('rejects misspelt call options, naming them', async () => {
  const calls: Array<[Promise<unknown>, RegExp]> = [
    [health(redis, { timeout: 5 } as never), /timeout: is not a known option/],
    [memory(redis, { timeout: 5 } as never), /timeout: is not a known option/],
    [shutdown(redis, { timeoutMS: 5 } as never), /timeoutMS: is not a known option/],
    [scanKeys(redis, { match: 'a:*', batchSize: 5 } as never).next(), /batchSize: is not a known option/],
    [deleteByPattern(redis, { match: 'a:*', batch: 5 } as never), /batch: is not a known option/],
    [
      defineScript({ name: 't.y', keys: 0, lua: 'return 1' }).run(redis, [], [], { bacth: false } as never),
      /bacth: is not a known option/,
    ],
  ]
  for (const [promise, message] of calls) await expect(promise).rejects.toThrow(message)
  expect(redis.status).toBe('wait')
})
