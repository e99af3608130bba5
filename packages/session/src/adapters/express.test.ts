import { subscribe, unsubscribe } from 'node:diagnostics_channel'
import type { Server } from 'node:http'
import { OPERATION_CHANNEL, type OperationEvent } from '@rp/core'
import { describeEachTarget, eventually, sleep, uniquePrefix } from '@rp/testing/vitest'
import express from 'express'
import session, { type SessionData } from 'express-session'
import fc from 'fast-check'
import { afterAll, beforeAll, expect, it } from 'vitest'
import { parseLayout } from '../engine.js'
import { SessionStore } from '../index.js'
import { SessionKeys } from '../session-keys.js'
import { ExpressSessionStore } from './express.js'
import { Browser, gate, urlOf } from './http.test-helpers.js'

declare module 'express-session' {
  interface SessionData {
    user?: string
    fields?: never
    [field: string]: unknown
  }
}

/** A Node-style store call as a promise. */
const call = <T>(fn: (cb: (error: unknown, value?: T) => void) => void) =>
  new Promise<T>((resolve, reject) => fn((e, v) => (e ? reject(e) : resolve(v as T))))

/** What express-session does at the start of a request: the stored data as its Session. */
async function loadSession(store: ExpressSessionStore, sid: string): Promise<Record<string, unknown>> {
  const data = await call<SessionData | null>((cb) => store.get(sid, cb))
  return store.createSession({ sessionID: sid, sessionStore: store } as never, data!) as never as Record<
    string,
    unknown
  >
}

describeEachTarget('ExpressSessionStore over HTTP', (target) => {
  const redis = target.client()
  const prefix = uniquePrefix('xs')
  const sessions = new SessionStore({ redis, prefix, idleTtlMs: 60_000 })
  const store = new ExpressSessionStore({ sessions })
  const keys = new SessionKeys(prefix)
  const gates = new Map<string, ReturnType<typeof gate>>()
  let server: Server
  let base: string

  beforeAll(async () => {
    const app = express()
    app.use(express.json())
    app.use(
      session({
        store,
        secret: 'test secret',
        resave: false,
        saveUninitialized: false,
        rolling: true,
        cookie: { maxAge: 60_000 },
      }),
    )
    app.post('/login', (req, res) => {
      req.session.user = req.body.user
      res.json({ ok: true })
    })
    app.get('/me', (req, res) => {
      res.json({ session: { ...req.session, cookie: undefined }, expires: req.session.cookie.expires })
    })
    // Holds the request after the session is loaded until the test opens the named gate.
    app.post('/slow/:gate', async (req, res) => {
      const g = gate()
      gates.set(req.params.gate, g)
      await g.opened
      req.session[req.body.field] = req.body.value
      res.json({ ok: true })
    })
    // Holds a request that changes nothing until the test opens the named gate.
    app.get('/wait/:gate', async (req, res) => {
      const g = gate()
      gates.set(req.params.gate, g)
      await g.opened
      res.json({ ok: true })
    })
    app.post('/remember', (req, res) => {
      req.session.cookie.maxAge = 120_000
      res.json({ ok: true })
    })
    app.post('/set', (req, res) => {
      req.session[req.body.field] = req.body.value
      res.json({ ok: true })
    })
    app.post('/logout', (req, res, next) => {
      req.session.destroy((error) => (error ? next(error) : res.json({ ok: true })))
    })
    app.post('/regenerate', (req, res, next) => {
      const user = req.session.user
      req.session.regenerate((error) => {
        if (error) return next(error)
        req.session.user = user
        res.json({ ok: true })
      })
    })
    server = await new Promise<Server>((resolve) => {
      const s = app.listen(0, '127.0.0.1', () => resolve(s))
    })
    base = urlOf(server)
  })
  afterAll(async () => {
    store.close()
    await new Promise((r) => server.close(r))
  })

  const sidOf = (browser: Browser) =>
    decodeURIComponent(browser.cookies.get('connect.sid')!).slice(2).split('.')[0]!
  const keyOf = (browser: Browser) => keys.session(SessionKeys.handle(sidOf(browser)))

  it('logs in, reads, updates and logs out, with the id hashed in Redis', async () => {
    const browser = new Browser(base)
    await browser.request('POST', '/login', { user: 'ana' })
    expect(browser.cookies.has('connect.sid')).toBe(true)
    expect((await browser.request('GET', '/me')).json.session.user).toBe('ana')
    await browser.request('POST', '/set', { field: 'theme', value: 'dark' })
    expect((await browser.request('GET', '/me')).json.session).toMatchObject({ user: 'ana', theme: 'dark' })
    expect(await redis.exists(keyOf(browser))).toBe(1)
    await browser.request('POST', '/logout')
    expect((await browser.request('GET', '/me')).json.session.user).toBeUndefined()
  })

  it('keeps both changes when two requests change different fields at once', async () => {
    const browser = new Browser(base)
    await browser.request('POST', '/login', { user: 'bo' })
    await browser.request('POST', '/set', { field: 'a', value: 0 })
    const a = browser.request('POST', '/slow/a', { field: 'a', value: 1 })
    const b = browser.request('POST', '/slow/b', { field: 'b', value: 2 })
    await eventually(() => gates.has('a') && gates.has('b'))
    // a saves first; b loaded a = 0 before that, and must not write its stale copy back.
    gates.get('a')!.open()
    await a
    gates.get('b')!.open()
    await b
    expect((await browser.request('GET', '/me')).json.session).toMatchObject({ user: 'bo', a: 1, b: 2 })
  })

  it('stays logged out when a slow request finishes after logout (connect-redis issue 328)', async () => {
    const browser = new Browser(base)
    await browser.request('POST', '/login', { user: 'cy' })
    const key = keyOf(browser)
    const slow = browser.request('POST', '/slow/logout-race', { field: 'cart', value: [1, 2] })
    await eventually(() => gates.has('logout-race'))
    const stale = new Browser(base)
    stale.cookies.set('connect.sid', browser.cookies.get('connect.sid')!)
    await browser.request('POST', '/logout')
    gates.get('logout-race')!.open()
    expect((await slow).status).toBe(200)
    // The tombstone, and nothing of the session.
    expect(await redis.get(key)).toBe('T')
    const after = await stale.request('GET', '/me')
    expect(after.json.session.user).toBeUndefined()
    expect(after.json.session.cart).toBeUndefined()
  })

  it('moves cookie.expires and the Redis TTL together on every request (rolling)', async () => {
    const browser = new Browser(base)
    await browser.request('POST', '/login', { user: 'dee' })
    const first = Date.parse((await browser.request('GET', '/me')).json.expires)
    await sleep(300)
    const seen = await browser.request('GET', '/me')
    const second = Date.parse(seen.json.expires)
    const cookieExpires = Date.parse(/Expires=([^;]+)/.exec(browser.lastSetCookie!)![1]!)
    expect(second).toBeGreaterThan(first)
    const storedExpiry = parseLayout((await redis.get(keyOf(browser)))!)!.expiresAt
    const ttlEnds = Date.now() + (await redis.pttl(keyOf(browser)))
    expect(Math.abs(storedExpiry - ttlEnds)).toBeLessThan(100)
    // The cookie the browser holds ends within a second of the stored expiry (cookie dates have
    // one-second resolution).
    expect(Math.abs(cookieExpires - storedExpiry)).toBeLessThan(1_500)
  })

  it('rolls the expiry in the read: a request that changes nothing is one call, a new maxAge still lands', async () => {
    const browser = new Browser(base)
    await browser.request('POST', '/login', { user: 'eve' })
    const operations: string[] = []
    const listener = (e: unknown) => {
      const { package: pkg, operation } = e as OperationEvent
      if (pkg === 'session') operations.push(operation)
    }
    subscribe(OPERATION_CHANNEL, listener)
    try {
      const before = parseLayout((await redis.get(keyOf(browser)))!)!
      await sleep(20)
      await browser.request('GET', '/me')
      const after = parseLayout((await redis.get(keyOf(browser)))!)!
      expect(operations).toEqual(['express.get'])
      expect(after.lastSeenAt).toBeGreaterThan(before.lastSeenAt)
      expect(after.expiresAt).toBeGreaterThan(before.expiresAt)
      // A cookie that asks for another TTL than the read rolled with is touched with it.
      operations.length = 0
      await browser.request('POST', '/remember')
      expect(operations).toEqual(['express.get', 'express.touch'])
      expect(await redis.pttl(keyOf(browser))).toBeGreaterThan(100_000)
      // A request slower than the tolerance is touched at its end, so the key ends with the cookie.
      operations.length = 0
      const slow = browser.request('GET', '/wait/slow-read')
      await eventually(() => gates.has('slow-read'))
      await sleep(1_200)
      gates.get('slow-read')!.open()
      await slow
      expect(operations).toEqual(['express.get', 'express.touch'])
      const cookieEnds = Date.parse(/Expires=([^;]+)/.exec(browser.lastSetCookie!)![1]!)
      const keyEnds = Date.now() + (await redis.pttl(keyOf(browser)))
      expect(Math.abs(cookieEnds - keyEnds)).toBeLessThan(1_500)
    } finally {
      unsubscribe(OPERATION_CHANNEL, listener)
    }
  })

  it('touches at the end of a request whose load touchAfterMs held back', async () => {
    const throttled = new SessionStore({
      redis,
      prefix: `${prefix}t`,
      idleTtlMs: 60_000,
      touchAfterMs: 30_000,
    })
    const throttledStore = new ExpressSessionStore({ sessions: throttled })
    const app = express()
    app.use(
      session({ store: throttledStore, secret: 's', resave: false, saveUninitialized: false, rolling: true }),
    )
    app.post('/login', (req, res) => {
      req.session.user = 'gil'
      res.json({})
    })
    app.get('/me', (_req, res) => {
      res.json({})
    })
    const s = await new Promise<Server>((resolve) => {
      const srv = app.listen(0, '127.0.0.1', () => resolve(srv))
    })
    const operations: string[] = []
    const listener = (e: unknown) => {
      const { package: pkg, operation } = e as OperationEvent
      if (pkg === 'session') operations.push(operation)
    }
    try {
      const browser = new Browser(urlOf(s))
      await browser.request('POST', '/login')
      subscribe(OPERATION_CHANNEL, listener)
      // Seen a moment ago: the load does not roll, so the touch must go (and the script decides).
      await browser.request('GET', '/me')
      expect(operations).toEqual(['express.get', 'express.touch'])
    } finally {
      unsubscribe(OPERATION_CHANNEL, listener)
      throttledStore.close()
      await new Promise((r) => s.close(r))
    }
  })

  it('merges two overlapping saves per field, whatever the field names and values (model-based)', async () => {
    // Unicode makes the stored text's bytes differ from its characters: the diff must still find
    // each field's stored text.
    const name = fc.string({ unit: 'binary', minLength: 1, maxLength: 6 })
    let runs = 0
    await fc.assert(
      fc.asyncProperty(
        fc.dictionary(name, fc.jsonValue({ maxDepth: 2 }), { minKeys: 2, maxKeys: 6 }),
        fc.jsonValue({ maxDepth: 2 }),
        fc.jsonValue({ maxDepth: 2 }),
        async (initial, x, y) => {
          // A fresh id per run: shrinking replays runs, and an upsert merges into what is there.
          const sid = `model-${runs++}`
          const [a, b] = Object.keys(initial) as [string, string]
          await call((cb) => store.set(sid, { ...initial, cookie: { maxAge: 60_000 } } as never, cb))
          const [first, second] = await Promise.all([loadSession(store, sid), loadSession(store, sid)])
          first[a] = x
          second[b] = y
          await call((cb) => store.set(sid, first as never, cb))
          await call((cb) => store.set(sid, second as never, cb))
          const final = (await call<SessionData | null>((cb) => store.get(sid, cb))) as Record<
            string,
            unknown
          >
          const json = (v: unknown) => JSON.parse(JSON.stringify(v)) as unknown
          expect(json(final[a])).toEqual(json(x))
          expect(json(final[b])).toEqual(json(y))
          for (const [k, v] of Object.entries(initial))
            if (k !== a && k !== b) expect(json(final[k])).toEqual(json(v))
        },
      ),
      { numRuns: 40 },
    )
  })

  it.each([true, false])(
    'saves a loaded session whole, saves it again, and merges a save that lost a race (batch: %s)',
    async (batch) => {
      const own = new SessionStore({ redis, prefix: `${prefix}w${batch}`, idleTtlMs: 60_000, batch })
      const ownKeys = new SessionKeys(`${prefix}w${batch}`)
      const ownStore = new ExpressSessionStore({ sessions: own })
      const load = (sid: string) => loadSession(ownStore, sid)
      const sid = 'whole-1'
      await call((cb) => ownStore.set(sid, { a: 1, cookie: { maxAge: 60_000 } } as never, cb))
      // Multi-byte text: the index the client builds counts bytes, as the merge script reads them.
      const first = await load(sid)
      first.b = 'é😀 ünïcode'
      await call((cb) => ownStore.set(sid, first as never, cb))
      first.c = 3
      await call((cb) => ownStore.set(sid, first as never, cb))
      const [second, third] = await Promise.all([load(sid), load(sid)])
      second.d = 4
      third.ключ = 'значение'
      await call((cb) => ownStore.set(sid, second as never, cb))
      await call((cb) => ownStore.set(sid, third as never, cb))
      await own.update(sid, { f: 6 })
      const final = await own.get(sid)
      expect(final?.data).toMatchObject({ a: 1, b: 'é😀 ünïcode', c: 3, d: 4, ключ: 'значение', f: 6 })
      // The create, four saves and the update.
      expect(final?.version).toBe(6)
      // The stored expiry and the key's TTL agree, a cookie's maxAge from now.
      const key = ownKeys.session(SessionKeys.handle(sid))
      const stored = parseLayout((await redis.get(key))!)!
      const now = Date.now()
      expect(Math.abs(stored.expiresAt - now - (await redis.pttl(key)))).toBeLessThan(1_000)
      expect(Math.abs(stored.expiresAt - now - 60_000)).toBeLessThan(2_000)
      ownStore.close()
    },
  )

  it('merges, not replaces, when the id was destroyed and created again since the load', async () => {
    const quick = new ExpressSessionStore({
      sessions: new SessionStore({ redis, prefix: `${prefix}t`, idleTtlMs: 60_000, tombstoneMs: 50 }),
    })
    const load = (sid: string) => loadSession(quick, sid)
    await call((cb) => quick.set('again-1', { a: 1, cookie: { maxAge: 60_000 } } as never, cb))
    const old = await load('again-1')
    await call((cb) => quick.destroy('again-1', cb))
    await sleep(150)
    // Created again under the same id once the tombstone is gone: version 1 again, as the load was.
    await call((cb) => quick.set('again-1', { b: 2, cookie: { maxAge: 60_000 } } as never, cb))
    old.c = 3
    await call((cb) => quick.set('again-1', old as never, cb))
    const final = (await call<SessionData | null>((cb) => quick.get('again-1', cb))) as Record<
      string,
      unknown
    >
    // Only the old request's change lands; the new session's own data stays.
    expect(final).toMatchObject({ b: 2, c: 3 })
    expect(final).not.toHaveProperty('a')
    quick.close()
  })

  it('refuses a save over maxBytes, counted in bytes, and keeps what was stored', async () => {
    const small = new ExpressSessionStore({
      sessions: new SessionStore({ redis, prefix: `${prefix}b`, idleTtlMs: 60_000, maxBytes: 300 }),
    })
    await call((cb) => small.set('big-1', { a: 1, cookie: { maxAge: 60_000 } } as never, cb))
    const loaded = await loadSession(small, 'big-1')
    // About 200 characters with its cookie, but over 300 bytes with this text.
    loaded.x = 'é'.repeat(110)
    await expect(call((cb) => small.set('big-1', loaded as never, cb))).rejects.toMatchObject({
      name: 'SessionTooLargeError',
    })
    expect(await call((cb) => small.get('big-1', cb))).not.toHaveProperty('x')
    loaded.x = 'e'.repeat(110)
    await call((cb) => small.set('big-1', loaded as never, cb))
    expect(await call((cb) => small.get('big-1', cb))).toMatchObject({ a: 1, x: 'e'.repeat(110) })
    small.close()
  })

  it('does not revive a session that expired while a request was in flight', async () => {
    const shortSessions = new SessionStore({ redis, prefix: `${prefix}s`, idleTtlMs: 60_000 })
    const shortStore = new ExpressSessionStore({ sessions: shortSessions })
    const app = express()
    app.use(express.json())
    app.use(
      session({
        store: shortStore,
        secret: 's',
        resave: false,
        saveUninitialized: false,
        cookie: { maxAge: 400 },
      }),
    )
    const g = gate()
    app.post('/login', (req, res) => {
      req.session.user = 'eve'
      res.json({})
    })
    app.post('/slow', async (req, res) => {
      await g.opened
      req.session.late = true
      res.json({})
    })
    const s = await new Promise<Server>((resolve) => {
      const srv = app.listen(0, '127.0.0.1', () => resolve(srv))
    })
    try {
      const browser = new Browser(urlOf(s))
      await browser.request('POST', '/login')
      const key = new SessionKeys(`${prefix}s`).session(SessionKeys.handle(sidOf(browser)))
      const slow = browser.request('POST', '/slow')
      await sleep(100)
      await eventually(async () => (await redis.exists(key)) === 0, 2_000, 'the session to expire')
      g.open()
      await slow
      expect(await redis.exists(key)).toBe(0)
    } finally {
      shortStore.close()
      await new Promise((r) => s.close(r))
    }
  })

  it('regenerates the id on login: the old cookie no longer works', async () => {
    const browser = new Browser(base)
    await browser.request('POST', '/login', { user: 'fay' })
    const old = browser.cookies.get('connect.sid')!
    await browser.request('POST', '/regenerate')
    expect(browser.cookies.get('connect.sid')).not.toBe(old)
    expect((await browser.request('GET', '/me')).json.session.user).toBe('fay')
    const attacker = new Browser(base)
    attacker.cookies.set('connect.sid', old)
    expect((await attacker.request('GET', '/me')).json.session.user).toBeUndefined()
  })

  it('implements all, ids, length and clear over every master, with handles instead of ids', async () => {
    const own = new SessionStore({ redis, prefix: `${prefix}a` })
    const admin = new ExpressSessionStore({ sessions: own })
    for (let i = 0; i < 30; i++)
      await call<void>((cb) => admin.set(`sid-${i}`, { cookie: {}, n: i } as never, cb))
    await call<void>((cb) => admin.destroy('sid-0', cb))
    expect(await call<number>((cb) => admin.length(cb))).toBe(29)
    const ids = await call<string[]>((cb) => admin.ids(cb))
    expect(ids).toHaveLength(29)
    expect(ids).toContain(SessionKeys.handle('sid-5'))
    expect(ids).not.toContain('sid-5')
    const all = await call<Array<{ n: number }>>((cb) => admin.all(cb as never))
    expect(all.map((s) => s.n).sort((x, y) => x - y)).toEqual(Array.from({ length: 29 }, (_, i) => i + 1))
    await call<void>((cb) => admin.clear(cb))
    expect(await call<number>((cb) => admin.length(cb))).toBe(0)
    admin.close()
  })
})
