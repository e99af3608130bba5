import { subscribe, unsubscribe } from 'node:diagnostics_channel'
import { EVENT_CHANNEL, masters, type RedisClient } from '@rp/core'
import {
  describeEachTarget,
  eventually,
  expectInvalidArguments,
  sleep,
  uniquePrefix,
} from '@rp/testing/vitest'
import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import { SessionConflictError, SessionStore, SessionTooLargeError } from './index.js'

async function allKeys(redis: RedisClient, prefix: string): Promise<string[]> {
  const keys: string[] = []
  for (const node of await masters(redis)) {
    let cursor = '0'
    do {
      const [next, found] = await node.scan(cursor, 'MATCH', `${prefix}:*`, 'COUNT', 1000)
      cursor = next
      keys.push(...found)
    } while (cursor !== '0')
  }
  return keys
}

describeEachTarget('SessionStore', (target) => {
  const redis = target.client()
  const store = (options: Partial<ConstructorParameters<typeof SessionStore>[0]> = {}) => {
    const prefix = uniquePrefix('sess')
    const sessions = new SessionStore({ redis, prefix, ...options })
    prefixes.set(sessions, prefix)
    return sessions
  }

  it('creates, reads, merges and destroys a session, each step on the server clock', async () => {
    const sessions = store()
    const s = await sessions.create('ana', { cart: [] }, { meta: { ip: '10.0.0.1' } })
    expect(s).toMatchObject({ userId: 'ana', data: { cart: [] }, meta: { ip: '10.0.0.1' }, version: 1 })
    expect(s.id).toMatch(/^[A-Za-z0-9_-]{32}$/)
    expect(s.absoluteExpiresAt - s.createdAt).toBe(7 * 86_400_000)
    expect(s.expiresAt - s.lastSeenAt).toBe(30 * 60_000)
    expect(await sessions.update(s.id, { theme: 'dark' })).toBe(2)
    const read = await sessions.get(s.id)
    expect(read).toMatchObject({ id: s.id, data: { cart: [], theme: 'dark' }, version: 2 })
    expect(await sessions.update(s.id, { theme: undefined })).toBe(3)
    expect((await sessions.get(s.id))?.data).toEqual({ cart: [] })
    expect(await sessions.destroy(s.id)).toBe(true)
    expect(await sessions.get(s.id)).toBeNull()
    expect(await sessions.destroy(s.id)).toBe(false)
  })

  it('runs calls in the order they were made', async () => {
    const sessions = store()
    const { id } = await sessions.create('u', { a: 1 })
    // Neither awaited before the next: the read still sees the update, and nothing after the destroy.
    const [, read] = await Promise.all([sessions.update(id, { a: 2 }), sessions.get(id)])
    expect(read?.data).toEqual({ a: 2 })
    const [, , gone] = await Promise.all([
      sessions.update(id, { a: 3 }),
      sessions.destroy(id),
      sessions.get(id),
    ])
    expect(gone).toBeNull()
  })

  it('keeps every one of 100 concurrent updates of different fields', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.uniqueArray(fc.string({ minLength: 1, maxLength: 12 }), { minLength: 100, maxLength: 100 }),
        async (fields) => {
          const sessions = store()
          const { id } = await sessions.create('u', {})
          const versions = await Promise.all(fields.map((f, i) => sessions.update(id, { [f]: i })))
          const data = (await sessions.get(id))!.data
          expect(Object.keys(data).sort()).toEqual([...fields].sort())
          for (const [i, f] of fields.entries()) expect(data[f]).toBe(i)
          expect(new Set(versions).size).toBe(100)
        },
      ),
      { numRuns: 3 },
    )
  })

  it('keeps any data, user id and meta exact through merges, replaces and regenerate (model-based)', async () => {
    // Field names and strings from all of Unicode, with the characters the stored layout uses
    // (quotes, colons, commas, dots, braces, backslashes): every byte length and offset in the
    // value must stay right, in Lua and in the client.
    const text = fc.string({ unit: 'binary', minLength: 1, maxLength: 8 })
    const field = fc.oneof(text, fc.constantFrom('"', ':', ',', '.', '{', '}', '\\', '__proto__', 'a"b:c'))
    const data = fc.dictionary(field, fc.jsonValue({ maxDepth: 2 }), { maxKeys: 6 })
    const step = fc.oneof(
      fc.record({
        patch: fc.dictionary(field, fc.option(fc.jsonValue({ maxDepth: 2 }), { nil: undefined }), {
          maxKeys: 4,
        }),
      }),
      fc.record({ replace: data }),
      fc.constant({ regenerate: true as const }),
    )
    const base64 = {
      encode: (v: unknown) => Buffer.from(JSON.stringify(v)).toString('base64'),
      decode: (t: string) => JSON.parse(Buffer.from(t, 'base64').toString()),
    }
    const json = (v: unknown) => JSON.parse(JSON.stringify(v)) as unknown
    const entries = (o: object) => Object.entries(o).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
    await fc.assert(
      fc.asyncProperty(
        text,
        fc.record({ ua: text, city: text }),
        data,
        fc.array(step, { maxLength: 6 }),
        fc.boolean(),
        async (userId, meta, initial, steps, withCodec) => {
          const sessions = store(withCodec ? { codec: base64 } : {})
          const model = new Map(Object.entries(json(initial) as object))
          let { id } = await sessions.create(userId, initial, { meta })
          for (const s of steps) {
            if ('patch' in s) {
              await sessions.update(id, s.patch)
              for (const [k, v] of Object.entries(s.patch))
                if (v === undefined) model.delete(k)
                else model.set(k, json(v))
            } else if ('replace' in s) {
              await sessions.update(id, () => s.replace)
              model.clear()
              for (const [k, v] of Object.entries(json(s.replace) as object)) model.set(k, v)
            } else id = (await sessions.regenerate(id))!.id
          }
          const read = (await sessions.get(id))!
          expect(read.userId).toBe(userId)
          expect(read.meta).toEqual(meta)
          expect(entries(read.data)).toEqual(entries(Object.fromEntries(model)))
          const [device] = await sessions.listForUser(userId)
          expect(device!.meta).toEqual(meta)
        },
      ),
      { numRuns: 40 },
    )
  })

  it('lets exactly one of two compare-and-set writers win', async () => {
    await fc.assert(
      fc.asyncProperty(fc.jsonValue(), fc.jsonValue(), async (a, b) => {
        const sessions = store()
        const { id, version } = await sessions.create('u', { n: 0 })
        const outcomes = await Promise.allSettled([
          sessions.update(id, { n: a }, { expectedVersion: version }),
          sessions.update(id, () => ({ n: b }), { expectedVersion: version }),
        ])
        const won = outcomes.filter((o) => o.status === 'fulfilled')
        const lost = outcomes.filter((o) => o.status === 'rejected')
        expect(won).toHaveLength(1)
        expect(lost).toHaveLength(1)
        expect((lost[0] as PromiseRejectedResult).reason).toBeInstanceOf(SessionConflictError)
        expect((await sessions.get(id))!.version).toBe(version + 1)
      }),
      { numRuns: 10 },
    )
  })

  it('retries an updater function on a race, so concurrent increments all count', async () => {
    const sessions = store()
    const { id } = await sessions.create('u', { n: 0 })
    await Promise.all(
      Array.from({ length: 4 }, () => sessions.update(id, (d) => ({ n: (d.n as number) + 1 }))),
    )
    expect((await sessions.get(id))!.data.n).toBe(4)
  })

  it('refuses every write, touch and regenerate for a destroyed id while its tombstone lasts', async () => {
    const sessions = store()
    const { id } = await sessions.create('u', { a: 1 })
    const inFlight = sessions.update(id, { late: true })
    await sessions.destroy(id)
    await inFlight
    expect(await sessions.get(id)).toBeNull()
    expect(await sessions.update(id, { b: 2 })).toBeNull()
    expect(await sessions.update(id, () => ({ b: 2 }))).toBeNull()
    expect(await sessions.touch(id)).toBeNull()
    expect(await sessions.regenerate(id)).toBeNull()
    expect(await sessions.get(id)).toBeNull()
  })

  it('regenerate moves the data to a new id and ends the old one at once', async () => {
    const sessions = store()
    const s = await sessions.create('ana', { cart: [1] }, { meta: { ua: 'x' } })
    const fresh = (await sessions.regenerate(s.id))!
    expect(fresh.id).not.toBe(s.id)
    expect(fresh).toMatchObject({ userId: 'ana', data: { cart: [1] }, meta: { ua: 'x' } })
    expect(fresh.absoluteExpiresAt).toBe(s.absoluteExpiresAt)
    expect(fresh.createdAt).toBe(s.createdAt)
    expect(await sessions.get(s.id)).toBeNull()
    expect(await sessions.update(s.id, { x: 1 })).toBeNull()
    expect((await sessions.get(fresh.id))?.data).toEqual({ cart: [1] })
    expect((await sessions.listForUser('ana')).map((d) => d.handle)).toHaveLength(1)
  })

  it('rolls the idle expiry on use, never past the absolute cap, and never revives an expired session', async () => {
    const sessions = store({ idleTtlMs: 400, absoluteTtlMs: 1_200 })
    const { id, absoluteExpiresAt } = await sessions.create('u', {})
    const started = Date.now()
    let last = 0
    while (Date.now() - started < 1_500) {
      const s = await sessions.get(id)
      if (!s) break
      expect(s.expiresAt).toBeLessThanOrEqual(absoluteExpiresAt)
      expect(s.expiresAt).toBeGreaterThanOrEqual(last)
      last = s.expiresAt
      const ttl = await redis.pttl(keyOf(await allKeys(redis, sessionsPrefix(sessions))))
      expect(Math.abs(ttl - (s.expiresAt - Date.now()))).toBeLessThan(150)
      await sleep(100)
    }
    // Active every 100 ms, so only the absolute cap can have ended it.
    expect(Date.now() - started).toBeGreaterThan(1_000)
    expect(await sessions.get(id)).toBeNull()
    expect(await sessions.touch(id)).toBeNull()

    const idle = store({ idleTtlMs: 200, absoluteTtlMs: 10_000 })
    const other = await idle.create('u', {})
    await sleep(350)
    expect(await idle.touch(other.id)).toBeNull()
    expect(await idle.get(other.id)).toBeNull()
  })

  it('throttles rolling writes with touchAfterMs', async () => {
    const sessions = store({ touchAfterMs: 60_000 })
    const s = await sessions.create('u', {})
    await sleep(20)
    expect((await sessions.get(s.id))!.lastSeenAt).toBe(s.lastSeenAt)
    expect(await sessions.touch(s.id)).toBe(s.expiresAt)
  })

  it('lists only a user’s live sessions and logs them out everywhere except the current one', async () => {
    const sessions = store({ idleTtlMs: 300, absoluteTtlMs: 60_000 })
    const a = await sessions.create('bo', {}, { meta: { device: 'a' } })
    const b = await sessions.create('bo', {}, { meta: { device: 'b' } })
    const c = await sessions.create('bo', {}, { meta: { device: 'c' } })
    await sleep(200)
    await sessions.touch(a.id)
    await sessions.touch(b.id)
    await sleep(200) // c expired (idle), a and b alive
    const devices = await sessions.listForUser('bo')
    expect(devices.map((d) => d.meta.device).sort()).toEqual(['a', 'b'])
    expect(devices[0]!.idHint).toHaveLength(8)
    expect(await sessions.get(c.id)).toBeNull()
    expect(await sessions.destroyAllForUser('bo', { except: a.id })).toBe(1)
    expect(await sessions.get(a.id)).not.toBeNull()
    expect(await sessions.get(b.id)).toBeNull()
    expect((await sessions.listForUser('bo')).map((d) => d.meta.device)).toEqual(['a'])
  })

  it('never writes a session id to Redis: 1,000 creates, then every key and value on every master', async () => {
    const prefix = uniquePrefix('ids')
    const sessions = new SessionStore({ redis, prefix })
    const ids: string[] = []
    for (let i = 0; i < 1_000; i += 100) {
      const batch = await Promise.all(
        Array.from({ length: 100 }, (_, j) => sessions.create(`user${(i + j) % 37}`, { n: i + j })),
      )
      ids.push(...batch.map((s) => s.id))
    }
    const keys = await allKeys(redis, prefix)
    expect(keys.length).toBeGreaterThanOrEqual(1_000)
    const dump: string[] = [...keys]
    for (const key of keys) {
      const type = await redis.type(key)
      if (type === 'string') dump.push((await redis.get(key))!)
      else dump.push(...(await redis.zrange(key, 0, -1)))
      expect(await redis.pttl(key)).toBeGreaterThan(0)
    }
    const text = dump.join('\n')
    for (const id of ids) expect(text.includes(id)).toBe(false)
  })

  it('puts a TTL on every key it writes, tombstones and user indexes included', async () => {
    const sessions = store()
    const s = await sessions.create('cy', { a: 1 })
    await sessions.create('cy', { a: 2 })
    await sessions.destroy(s.id)
    const keys = await allKeys(redis, sessionsPrefix(sessions))
    expect(keys).toHaveLength(3)
    for (const key of keys) expect(await redis.pttl(key)).toBeGreaterThan(0)
  })

  it('defaults: 64 KiB of data, 4096 characters of meta, TTLs up to ten years', async () => {
    const sessions = store()
    await expect(sessions.create('u', { big: 'x'.repeat(64 * 1024) })).rejects.toBeInstanceOf(
      SessionTooLargeError,
    )
    await expect(sessions.create('u', { big: 'x'.repeat(60 * 1024) })).resolves.toBeDefined()
    await expect(sessions.create('u', {}, { meta: { ua: 'x'.repeat(5_000) } })).rejects.toThrow(/^meta:/)
    const decade = 10 * 365 * 86_400_000
    expect(() => new SessionStore({ redis, idleTtlMs: decade, absoluteTtlMs: decade })).not.toThrow()
    expect(() => new SessionStore({ redis, absoluteTtlMs: decade + 1 })).toThrow(/^absoluteTtlMs/)
    expect(() => new SessionStore({ redis, batch: 0 as never })).toThrow(/^batch:/)
  })

  it('rejects a session over maxBytes with a typed error, and writes nothing', async () => {
    // The size is the bytes of the data as one JSON object text: {"a":"x…"} is 48 bytes.
    const sessions = store({ maxBytes: 103 })
    await expect(sessions.create('u', { big: 'x'.repeat(200) })).rejects.toBeInstanceOf(SessionTooLargeError)
    const { id } = await sessions.create('u', { a: 'x'.repeat(40) })
    await expect(sessions.update(id, { b: 'y'.repeat(40) })).resolves.toBe(2)
    await expect(sessions.update(id, { c: 'z'.repeat(40) })).rejects.toMatchObject({
      name: 'SessionTooLargeError',
      size: 142,
    })
    expect((await sessions.get(id))!.data).toEqual({ a: 'x'.repeat(40), b: 'y'.repeat(40) })
    // Replacing a field frees its old bytes: 103 exactly fits.
    await expect(sessions.update(id, { a: 'q', c: 'z'.repeat(40) })).resolves.toBe(3)
    await expect(sessions.update(id, { a: 'qq' })).rejects.toMatchObject({ size: 104 })
  })

  it('takes an async codec, and reads a corrupt value as no session, reported on rp:event', async () => {
    const sessions = store({
      codec: {
        encode: async (v) => Buffer.from(JSON.stringify(v)).toString('base64'),
        decode: async (t) => JSON.parse(Buffer.from(t, 'base64').toString()),
      },
    })
    const { id } = await sessions.create('u', { big: 10n.toString() })
    expect((await sessions.get(id))!.data).toEqual({ big: '10' })
    const [key] = (await allKeys(redis, sessionsPrefix(sessions))).filter((k) => k.endsWith(':s'))
    const stored = (await redis.get(key!))!
    await redis.set(key!, stored.replace(/"big":"[^"]*"/, '"big":"%%%not base64 json"'), 'KEEPTTL')
    const events: unknown[] = []
    const listener = (e: unknown) => events.push(e)
    subscribe(EVENT_CHANNEL, listener)
    try {
      expect(await sessions.get(id)).toBeNull()
    } finally {
      unsubscribe(EVENT_CHANNEL, listener)
    }
    expect(events).toContainEqual(
      expect.objectContaining({ package: 'session', event: 'decode-error', field: 'big' }),
    )
    // A field value the codec never wrote (not a string) reads as no session too, with no
    // rejection left unobserved behind it.
    await redis.set(key!, stored.replace(/"big":"[^"]*"/, '"big":1'), 'KEEPTTL')
    expect(await sessions.get(id)).toBeNull()
  })

  it('rejects bad input before any I/O, naming the argument', async () => {
    const sessions = store()
    const circular: Record<string, unknown> = {}
    circular.self = circular
    await expectInvalidArguments([
      [() => sessions.get(''), /^id:/],
      [() => sessions.get('x'.repeat(257)), /^id:/],
      [() => sessions.get(42 as never), /^id:/],
      // Hashed as UTF-8, where a lone surrogate becomes U+FFFD: 'x\uD800' and 'x\uFFFD' would be one session.
      [() => sessions.get('x\uD800'), /^id: must be well-formed/],
      [() => sessions.destroy('x\uDC00y'), /^id: must be well-formed/],
      [() => sessions.create('u\uD800', {}), /^userId: must be well-formed/],
      [() => sessions.create('', {}), /^userId:/],
      [() => sessions.create('x'.repeat(300), {}), /^userId:/],
      [() => sessions.create('u', [] as never), /^data:/],
      [() => sessions.create('u', 'str' as never), /^data:/],
      [() => sessions.create('u', { n: 10n }), /^data\.n:/],
      [() => sessions.create('u', circular), /^data\.self/],
      [() => sessions.create('u', { f: () => 1 }), /^data\.f:/],
      [() => sessions.create('u', { x: Number.NaN }), /^data\.x:/],
      [() => sessions.create('u', {}, { metaa: {} } as never), /^metaa:/],
      [() => sessions.update('id', { a: 1 }, { expectedVersion: -1 }), /^expectedVersion:/],
      [() => sessions.update('id', 5 as never), /^change:/],
      [() => sessions.destroyAllForUser('u', { except: '' }), /^except:/],
    ])
    expect(() => new SessionStore({ redis, idleTtlMs: 0 })).toThrow(/idleTtlMs/)
    expect(() => new SessionStore({ redis, idleTtlMs: 1_000, absoluteTtlMs: 500 })).toThrow(/absoluteTtlMs/)
    expect(() => new SessionStore({ redis, idleTTL: 5 } as never)).toThrow(/idleTTL: is not a known option/)
    expect(() => new SessionStore({ redis, failure: 'open' as never })).toThrow(/failure/)
  })

  it('answers null for an id that never existed', async () => {
    const sessions = store()
    expect(await sessions.get('nope')).toBeNull()
    expect(await sessions.update('nope', { a: 1 })).toBeNull()
    expect(await sessions.touch('nope')).toBeNull()
    expect(await sessions.regenerate('nope')).toBeNull()
  })

  describe('keys', () => {
    it('hash-tags each session by its own hashed id, so every script touches one slot', async () => {
      const sessions = store()
      const s = await sessions.create('dee', {})
      const keys = await allKeys(redis, sessionsPrefix(sessions))
      expect(keys.some((k) => /:\{[A-Za-z0-9_-]{43}\}:s$/.test(k))).toBe(true)
      expect(keys.some((k) => k.endsWith(':{dee}:u'))).toBe(true)
      await eventually(async () => (await sessions.get(s.id)) !== null)
    })
  })
})

const prefixes = new WeakMap<SessionStore, string>()
function sessionsPrefix(sessions: SessionStore): string {
  return prefixes.get(sessions)!
}
function keyOf(keys: string[]): string {
  return keys.find((k) => k.endsWith(':s'))!
}
