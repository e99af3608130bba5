import { subscribe, unsubscribe } from 'node:diagnostics_channel'
import { EVENT_CHANNEL } from '@rp/core'
import { describeEachTarget, uniquePrefix } from '@rp/testing/vitest'
import { expect, it } from 'vitest'
import { ExpressSessionStore } from './adapters/express.js'
import { FastifySessionStore } from './adapters/fastify.js'
import { SessionStore, SessionTooLargeError } from './index.js'
import { SessionKeys } from './session-keys.js'
import { engineOf } from './store.js'

type Callback = (error: unknown, value?: unknown) => void
const call = <T>(fn: (cb: Callback) => void) =>
  new Promise<T>((resolve, reject) => fn((e, v) => (e ? reject(e) : resolve(v as T))))

async function collectEvents<T>(
  work: () => Promise<T>,
): Promise<{ result: T; events: Array<Record<string, unknown>> }> {
  const events: Array<Record<string, unknown>> = []
  const listener = (e: unknown) => events.push(e as Record<string, unknown>)
  subscribe(EVENT_CHANNEL, listener)
  try {
    return { result: await work(), events }
  } finally {
    unsubscribe(EVENT_CHANNEL, listener)
  }
}

describeEachTarget('SessionStore under hostile use', (target) => {
  const redis = target.client()
  const make = (options: Record<string, unknown> = {}) => {
    const prefix = uniquePrefix('hs')
    return {
      prefix,
      keys: new SessionKeys(prefix),
      sessions: new SessionStore({ redis, prefix, ...options }),
    }
  }

  it('listForUser never forgets the index entry of a session still being created', async () => {
    const { sessions } = make()
    const engine = engineOf(sessions)
    // create() step 1 has run (the index entry), step 2 (the session) has not.
    const id = 'a-session-being-created-right-now'
    const at = await engine.indexAdd('create', 'bob', SessionKeys.handle(id))
    expect(await sessions.listForUser('bob')).toEqual([])
    await engine.write('create', id, {
      mode: 'create',
      set: new Map(),
      touch: false,
      userId: 'bob',
      absoluteExpiresAt: at,
    })
    expect(await sessions.listForUser('bob')).toHaveLength(1)
    expect(await sessions.destroyAllForUser('bob')).toBe(1)
    expect(await sessions.get(id)).toBeNull()
  })

  it('a regenerate that a "log out everywhere" overtakes ends logged out', async () => {
    const { sessions } = make()
    const s = await sessions.create('victim', { a: 1 })
    const engine = engineOf(sessions)
    const write = engine.write.bind(engine)
    engine.write = async (operation, id, request) => {
      if (operation === 'regenerate') await sessions.destroyAllForUser('victim')
      return write(operation, id, request)
    }
    try {
      expect(await sessions.regenerate(s.id)).toBeNull()
    } finally {
      engine.write = write
    }
    expect(await sessions.listForUser('victim')).toEqual([])
  })

  it('counts field names against maxBytes and caps the number of fields a session holds', async () => {
    const { sessions } = make({ maxBytes: 512 })
    const { id } = await sessions.create('u', {})
    await expect(sessions.update(id, { ['k'.repeat(2_000)]: 1 })).rejects.toThrow(/field names/)
    // A 600-byte name with a 1-byte value is 602 bytes stored: over maxBytes.
    await expect(sessions.update(id, { ['k'.repeat(600)]: 1 })).rejects.toBeInstanceOf(SessionTooLargeError)
    const many = make({ maxBytes: 1_000_000 }).sessions
    const big = await many.create('u', {})
    for (let i = 0; i < 1_000; i += 500)
      await many.update(big.id, Object.fromEntries(Array.from({ length: 500 }, (_, j) => [`f${i + j}`, 1])))
    await expect(many.update(big.id, { one: 'more' })).rejects.toMatchObject({ what: 'fields', size: 1_001 })
    // Rewriting existing fields is always allowed, and a replace can shrink the session.
    expect(await many.update(big.id, { f1: 2 })).toBe(4)
    expect(await many.update(big.id, () => ({ only: 1 }))).toBe(5)
    expect((await many.get(big.id))!.data).toEqual({ only: 1 })
  })

  it('refuses a touchAfterMs that would let an active session expire, and takes long idle TTLs', () => {
    expect(() => new SessionStore({ redis, idleTtlMs: 1_000, touchAfterMs: 1_000 })).toThrow(/^touchAfterMs/)
    const month = 30 * 86_400_000
    expect(() => new SessionStore({ redis, idleTtlMs: month, absoluteTtlMs: 2 * month })).not.toThrow()
  })

  it('never merges into a value whose length index does not match its data', async () => {
    const { sessions, keys } = make()
    const { id } = await sessions.create('u', { a: 'xx', b: 1 })
    const key = keys.session(SessionKeys.handle(id))
    const stored = (await redis.get(key))!
    // The first field's value length one too long: the index no longer ends where the data does.
    const edited = stored.replace(/,(\d+):4\./, ',$1:5.')
    expect(edited).not.toBe(stored)
    await redis.set(key, edited, 'KEEPTTL')
    const { result, events } = await collectEvents(() => sessions.update(id, { b: 2 }))
    expect(result).toBeNull()
    expect(events.some((e) => e.event === 'decode-error')).toBe(true)
    expect(await redis.get(key)).toBe(edited)
  })

  it('reads a value whose lastSeenAt is not a number as no session, also from a read that rolls', async () => {
    const { sessions, keys } = make()
    const plain = new SessionStore({ redis, prefix: keys.session('x').split(':{')[0]!, rolling: false })
    const { id } = await sessions.create('u', { a: 1 })
    const key = keys.session(SessionKeys.handle(id))
    const stored = (await redis.get(key))!
    await redis.set(key, `S1${'x'.repeat(13)}${stored.slice(15)}`, 'KEEPTTL')
    // The rolling read rewrites the times (repairing the value), so the plain read goes first.
    for (const store of [plain, sessions]) {
      const { result, events } = await collectEvents(() => store.get(id))
      expect(result).toBeNull()
      expect(events.some((e) => e.event === 'decode-error')).toBe(true)
    }
  })

  it('reads a hash it did not write, or another type at a session key, as no session, and reports it', async () => {
    const { sessions, keys } = make()
    const rolling = sessions
    const plain = new SessionStore({ redis, prefix: keys.session('x').split(':{')[0]!, rolling: false })
    const cases: Array<[string, () => Promise<unknown>]> = [
      ['no @l', () => redis.hset(keys.session(SessionKeys.handle('a')), '@e', Date.now() + 60_000)],
      [
        '@e not a number',
        () => redis.hset(keys.session(SessionKeys.handle('b')), '@e', 'soon', '@a', 1, '@l', 1, '@i', 1),
      ],
      ['a string', () => redis.set(keys.session(SessionKeys.handle('c')), 'hello')],
    ]
    for (const [i, [what, plant]] of cases.entries()) {
      await plant()
      const id = 'abc'[i]!
      for (const store of [rolling, plain]) {
        const { result, events } = await collectEvents(() => store.get(id))
        expect(result, what).toBeNull()
        expect(
          events.some((e) => e.event === 'decode-error'),
          what,
        ).toBe(true)
      }
      expect(await sessions.touch(id), what).toBeNull()
      expect(await sessions.update(id, { x: 1 }), what).toBeNull()
      // destroy leaves a key of another type as it is, and reports it.
      const key = keys.session(SessionKeys.handle(id))
      const type = await redis.type(key)
      const { result, events } = await collectEvents(() => sessions.destroy(id))
      expect(result, what).toBe(false)
      if (type !== 'string') {
        expect(await redis.type(key), what).toBe(type)
        expect(
          events.some((e) => e.event === 'decode-error'),
          what,
        ).toBe(true)
      }
    }
    // ...and the walk over every session skips the odd key instead of failing.
    const express = new ExpressSessionStore({ sessions })
    await call((cb) => express.set('real', { cookie: {}, n: 1 } as never, cb))
    expect(await call<number>((cb) => express.length(cb))).toBe(1)
    express.close()
  })

  it('framework stores refuse bad construction and bad sessions through the callback, never a throw', async () => {
    const { sessions } = make()
    expect(() => new ExpressSessionStore({ sessions, ttl: 5 } as never)).toThrow(
      /^ttl: is not a known option/,
    )
    expect(() => new ExpressSessionStore({ sessions: {} as never })).toThrow(/^sessions:/)
    expect(() => new FastifySessionStore({ sessions: undefined as never })).toThrow(/^sessions:/)
    const express = new ExpressSessionStore({ sessions })
    const fastify = new FastifySessionStore({ sessions })
    let outcome: unknown
    expect(() => express.set('sid', null as never, (e) => (outcome = e))).not.toThrow()
    await expect(call((cb) => express.set('sid', null as never, cb))).rejects.toMatchObject({
      code: 'RP_INVALID_ARGUMENT',
    })
    await expect(call((cb) => fastify.set('sid', 'hello' as never, cb))).rejects.toMatchObject({
      code: 'RP_INVALID_ARGUMENT',
    })
    await expect(call((cb) => express.get('x'.repeat(300), cb))).rejects.toMatchObject({
      code: 'RP_INVALID_ARGUMENT',
    })
    expect(outcome).toBeDefined()
    express.close()
  })

  it('a store callback that throws becomes an rp:event, not an uncaught exception', async () => {
    const { sessions } = make()
    const express = new ExpressSessionStore({ sessions })
    const uncaught: unknown[] = []
    const onUncaught = (e: unknown) => uncaught.push(e)
    process.on('uncaughtException', onUncaught)
    try {
      const { events } = await collectEvents(async () => {
        express.get('nope', () => {
          throw new Error('boom from the callback')
        })
        await new Promise((r) => setTimeout(r, 50))
      })
      expect(events.some((e) => e.event === 'callback-error')).toBe(true)
    } finally {
      process.off('uncaughtException', onUncaught)
      express.close()
    }
    expect(uncaught).toEqual([])
  })

  it('the fastify store merges each save against its own load, so two requests keep both changes', async () => {
    const { sessions } = make()
    const store = new FastifySessionStore({ sessions })
    await call((cb) => store.set('sid-ab', { cookie: {}, x: 1, y: 1 }, cb))
    const a = await call<Record<string, unknown>>((cb) => store.get('sid-ab', cb))
    const b = await call<Record<string, unknown>>((cb) => store.get('sid-ab', cb))
    await call((cb) => store.set('sid-ab', { ...b, x: 2 }, cb))
    await call((cb) => store.set('sid-ab', { ...a, y: 2 }, cb))
    const after = await call<Record<string, unknown>>((cb) => store.get('sid-ab', cb))
    expect(after).toMatchObject({ x: 2, y: 2 })
  })
})
