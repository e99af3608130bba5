import { Redis } from 'ioredis'
import { describe, expect, inject, it } from 'vitest'
import { createRedis, resolveConnection } from './connection.js'
import { delay } from './delay.js'
import { InvalidArgumentError } from './errors.js'
import { RedisGuard } from './guard.js'
import { health } from './health.js'
import { memory } from './memory.js'
import { deleteByPattern } from './scan.js'
import { installShutdownHandlers, shutdown } from './shutdown.js'
import { Deadlines, withTimeout } from './timeout.js'
import {
  requireDurationMs,
  requireGivenOptions,
  requireJsonValue,
  requireKnownOptions,
  requireOptions,
  requireWellFormedString,
} from './validate.js'

const badDurations = ['2000', Number.NaN, Number.POSITIVE_INFINITY, -1, 0, 1.5, 2 ** 31]

describe('validation in core', () => {
  it('createRedis refuses durations and counts it would silently coerce', () => {
    for (const value of badDurations) {
      expect(() =>
        createRedis({ commandTimeoutMs: value as never, redisOptions: { lazyConnect: true } }),
      ).toThrow(/commandTimeoutMs/)
      expect(() => createRedis({ connectTimeoutMs: value as never })).toThrow(InvalidArgumentError)
    }
    expect(() => createRedis({ maxRetriesPerRequest: -1 })).toThrow(/maxRetriesPerRequest/)
    expect(() => createRedis({ autoPipelining: 'yes' as never })).toThrow(/autoPipelining/)
    expect(() => createRedis({ reconnect: { baseMs: Number.NaN } })).toThrow(/reconnect\.baseMs/)
    expect(() => createRedis({ logger: 'console' as never })).toThrow(/logger/)
  })

  it('resolveConnection refuses ports and databases that cannot exist', () => {
    for (const port of [Number.NaN, -1, 0, 70_000, 1.5, '6379']) {
      expect(() => resolveConnection({ port: port as never, env: {} })).toThrow(/port/)
    }
    expect(() => resolveConnection({ db: -1, env: {} })).toThrow(/db/)
    expect(() => resolveConnection({ env: { REDIS_PORT: '70000' } })).toThrow(/REDIS_PORT/)
    expect(() => resolveConnection({ clusterNodes: [{ host: 'a', port: Number.NaN }], env: {} })).toThrow(
      /clusterNodes\[0\]\.port/,
    )
    expect(() => resolveConnection({ host: '' as never, env: {} })).toThrow(/host/)
  })

  it('timing helpers refuse a timeout a timer cannot hold', async () => {
    for (const value of badDurations) {
      await expect(withTimeout(Promise.resolve(1), value as never, 'op')).rejects.toThrow(
        InvalidArgumentError,
      )
      expect(() => new Deadlines(value as never)).toThrow(/timeoutMs/)
      expect(() => new RedisGuard(new Redis({ lazyConnect: true }), value as never)).toThrow(/timeoutMs/)
    }
  })

  it('health, memory, shutdown and deleteByPattern reject bad input instead of throwing', async () => {
    const redis = new Redis(inject('rpRedisUrl'), { lazyConnect: true })
    for (const call of [
      () => health(redis, { timeoutMs: Number.NaN }),
      () => memory(redis, { timeoutMs: -1 }),
      () => memory({} as never),
      () => health(null as never),
      () => shutdown(redis, { timeoutMs: '5' as never }),
      () => deleteByPattern(redis, { match: '' }),
    ]) {
      let promise: Promise<unknown> | undefined
      expect(() => {
        promise = call()
      }).not.toThrow()
      await expect(promise).rejects.toThrow(InvalidArgumentError)
    }
    redis.disconnect()
  })

  it('delay() validates, rejects, and never leaves a throwing timer behind', async () => {
    for (const [ms, signal] of [
      [Number.NaN],
      ['x'],
      [Number.POSITIVE_INFINITY],
      [10n],
      [10, {}],
      [10, { aborted: false }],
    ] as Array<[unknown, unknown?]>)
      await expect(delay(ms as never, signal as never)).rejects.toThrow(InvalidArgumentError)
    await expect(delay(5)).resolves.toBeUndefined()
    const controller = new AbortController()
    const waiting = delay(10_000, controller.signal)
    controller.abort()
    await expect(waiting).rejects.toThrow(/aborted/)
  })

  it('installShutdownHandlers refuses signals that do not exist', () => {
    const redis = new Redis({ lazyConnect: true })
    expect(() => installShutdownHandlers(redis, { signals: ['SIGFOO' as never] })).toThrow(/signals/)
    expect(() => installShutdownHandlers(redis, { signals: [] })).toThrow(/signals/)
    expect(() => installShutdownHandlers(redis, { signals: ['SIGKILL'] })).toThrow(/signals/)
    expect(() => installShutdownHandlers(redis, { timeoutMs: Number.NaN })).toThrow(/timeoutMs/)
    redis.disconnect()
  })

  it('requireKnownOptions names a misspelt option instead of ignoring it', () => {
    expect(() => requireKnownOptions('options', { ttlMs: 1 }, ['ttlMs'])).not.toThrow()
    expect(() => requireKnownOptions('options', { ttl: 1 }, ['ttlMs'])).toThrow(/^ttl: is not a known option/)
    expect(() => requireKnownOptions('l1', { size: 1 }, ['maxEntries'])).toThrow(/^l1\.size:/)
    // Inherited properties are not options.
    expect(() => requireKnownOptions('options', Object.create({ inherited: 1 }), [])).not.toThrow()
  })

  it('requireOptions takes an object of options (or none), and refuses a Map, a Set or a Date', () => {
    expect(requireOptions('options', undefined)).toEqual({})
    expect(requireOptions('options', { a: 1 })).toEqual({ a: 1 })
    expect(requireOptions('options', Object.create(null))).toEqual({})
    // Read property by property, as before: a class instance, or defaults through the prototype.
    const config = new (class Config {
      ttlMs = 5
    })()
    expect(requireOptions('options', config).ttlMs).toBe(5)
    expect((requireOptions('options', Object.create({ ttlMs: 5 })) as { ttlMs: number }).ttlMs).toBe(5)
    // Their entries are not properties: every option would silently take its default.
    for (const [bad, kind] of [
      [new Map([['ttlMs', 5]]), 'Map'],
      [new Set(), 'Set'],
      [new Date(0), 'Date'],
      [new Uint8Array(2), 'Uint8Array'],
    ] as const)
      expect(() => requireOptions('options', bad as never)).toThrow(
        `options: must be an object of options, got a ${kind}`,
      )
    expect(() => requireOptions('options', null as never)).toThrow(/^options: must be an object/)
    expect(() => requireGivenOptions('options', undefined)).toThrow(
      /^options: must be an object, got undefined/,
    )
    expect(requireGivenOptions('options', { a: 1 })).toEqual({ a: 1 })
    expect(() => requireDurationMs('graceMs', 2 ** 31)).toThrow(/^graceMs:/)
    expect(requireDurationMs('waitMs', 0)).toBe(0)
    expect(() => requireWellFormedString('id', 'a\uD800')).toThrow(/^id: must be well-formed/)
    expect(requireWellFormedString('id', 'a\uD83D\uDE00')).toBe('a😀')
  })

  it('requireJsonValue refuses what JSON would drop, change or throw on, naming the path', () => {
    const cycle: Record<string, unknown> = {}
    cycle.me = { again: cycle }
    for (const [value, path] of [
      [{ a: 10n }, /^data\.a:/],
      [{ a: () => 1 }, /^data\.a:/],
      [{ a: [1, Number.NaN] }, /^data\.a\[1\]:/],
      [{ a: [undefined] }, /^data\.a\[0\]:/],
      [{ a: Symbol('s') }, /^data\.a:/],
      [{ a: new Map() }, /^data\.a:.*plain object/],
      [cycle, /^data\.me\.again: is circular/],
    ] as Array<[unknown, RegExp]>)
      expect(() => requireJsonValue('data', value)).toThrow(path)
    const shared = { x: 1 }
    expect(() =>
      requireJsonValue('data', {
        a: shared,
        b: shared,
        d: new Date(0),
        n: null,
        u: undefined,
        o: Object.create(null),
      }),
    ).not.toThrow()
  })
})
