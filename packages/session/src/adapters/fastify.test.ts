import fastifyCookie from '@fastify/cookie'
import fastifySession from '@fastify/session'
import { describeEachTarget, eventually, uniquePrefix } from '@rp/testing/vitest'
import Fastify, { type FastifyInstance } from 'fastify'
import { afterAll, beforeAll, expect, it } from 'vitest'
import { SessionStore } from '../index.js'
import { FastifySessionStore } from './fastify.js'
import { Browser, gate } from './http.test-helpers.js'

declare module 'fastify' {
  interface Session {
    user?: string
    [field: string]: unknown
  }
}

describeEachTarget('FastifySessionStore over HTTP', (target) => {
  const redis = target.client()
  const sessions = new SessionStore({ redis, prefix: uniquePrefix('fs') })
  const gates = new Map<string, ReturnType<typeof gate>>()
  let app: FastifyInstance
  let base: string

  beforeAll(async () => {
    app = Fastify()
    await app.register(fastifyCookie)
    await app.register(fastifySession, {
      store: new FastifySessionStore({ sessions }),
      secret: 'a secret that is at least thirty-two characters long',
      cookie: { secure: false, maxAge: 60_000 },
      saveUninitialized: false,
      rolling: true,
    })
    app.post<{ Body: { user: string } }>('/login', async (req) => {
      req.session.user = req.body.user
      return { ok: true }
    })
    app.get('/me', async (req) => ({ user: req.session.user ?? null, theme: req.session.theme ?? null }))
    app.post<{ Body: { field: string; value: unknown } }>('/set', async (req) => {
      req.session.set(req.body.field, req.body.value)
      return { ok: true }
    })
    app.post<{ Params: { gate: string }; Body: { field: string; value: unknown } }>(
      '/slow/:gate',
      async (req) => {
        const g = gate()
        gates.set(req.params.gate, g)
        await g.opened
        req.session.set(req.body.field, req.body.value)
        return { ok: true }
      },
    )
    app.post('/logout', async (req) => {
      await req.session.destroy()
      return { ok: true }
    })
    base = await app.listen({ port: 0, host: '127.0.0.1' })
  })
  afterAll(() => app.close())

  it('logs in, reads, updates and logs out over HTTP', async () => {
    const browser = new Browser(base)
    await browser.request('POST', '/login', { user: 'ana' })
    expect(browser.cookies.has('sessionId')).toBe(true)
    expect((await browser.request('GET', '/me')).json).toEqual({ user: 'ana', theme: null })
    await browser.request('POST', '/set', { field: 'theme', value: 'dark' })
    expect((await browser.request('GET', '/me')).json).toEqual({ user: 'ana', theme: 'dark' })
    const stale = new Browser(base)
    stale.cookies.set('sessionId', browser.cookies.get('sessionId')!)
    await browser.request('POST', '/logout')
    expect((await stale.request('GET', '/me')).json.user).toBeNull()
  })

  it('stays logged out when a slow request saves after logout', async () => {
    const browser = new Browser(base)
    await browser.request('POST', '/login', { user: 'bo' })
    const stale = new Browser(base)
    stale.cookies.set('sessionId', browser.cookies.get('sessionId')!)
    const slow = stale.request('POST', '/slow/race', { field: 'cart', value: [1] })
    await eventually(() => gates.has('race'))
    await browser.request('POST', '/logout')
    gates.get('race')!.open()
    await slow
    expect((await stale.request('GET', '/me')).json.user).toBeNull()
  })
})
