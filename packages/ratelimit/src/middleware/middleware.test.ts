import type { Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import { serve } from '@hono/node-server'
import { standaloneClient, uniquePrefix } from '@rp/testing/vitest'
import express from 'express'
import Fastify from 'fastify'
import { Hono } from 'hono'
import { afterAll, describe, expect, it } from 'vitest'
import { RateLimiter } from '../limiter.js'
import type { RateLimitResult } from '../result.js'
import { rateLimit as expressRateLimit } from './express.js'
import { rateLimit as fastifyRateLimit } from './fastify.js'
import { rateLimit as honoRateLimit } from './hono.js'
import { byUser, ipKey } from './shared.js'

const redis = standaloneClient()
const servers: Array<() => Promise<void>> = []
afterAll(async () => {
  await Promise.all(servers.map((close) => close()))
  await redis.quit()
})

type Header = (name: string) => string | undefined
const common = {
  skip: (header: Header) => header('x-skip') === '1',
  cost: (header: Header) => Number(header('x-cost') ?? 1),
  user: (header: Header) => header('x-user'),
}

async function listen(server: Server): Promise<string> {
  if (!server.listening) await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()))
  servers.push(() => new Promise((resolve) => server.close(() => resolve())))
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`
}

type Extra = { body?: (r: RateLimitResult) => unknown }
const adapters: Record<string, (limiter: RateLimiter, extra?: Extra) => Promise<string>> = {
  async express(limiter, extra = {}) {
    const app = express()
    app.use(
      expressRateLimit({
        limiter,
        legacyHeaders: true,
        skip: (req) => common.skip((n) => req.get(n)),
        cost: (req) => common.cost((n) => req.get(n)),
        key: byUser((req) => common.user((n) => req.get(n))),
        ...extra,
      }),
    )
    app.get('/', (_req, res) => {
      res.json({ ok: true })
    })
    return listen(app.listen(0, '127.0.0.1'))
  },
  async fastify(limiter, extra = {}) {
    const app = Fastify()
    const header = (req: { headers: Record<string, unknown> }) => (n: string) =>
      req.headers[n] as string | undefined
    app.addHook(
      'onRequest',
      fastifyRateLimit({
        limiter,
        legacyHeaders: true,
        skip: (req) => common.skip(header(req)),
        cost: (req) => common.cost(header(req)),
        key: byUser((req) => common.user(header(req))),
        ...extra,
      }),
    )
    app.get('/', async () => ({ ok: true }))
    await app.listen({ port: 0, host: '127.0.0.1' })
    servers.push(() => app.close())
    return `http://127.0.0.1:${(app.server.address() as AddressInfo).port}`
  },
  async hono(limiter, extra = {}) {
    const app = new Hono()
    app.use(
      honoRateLimit({
        limiter,
        legacyHeaders: true,
        skip: (c) => common.skip((n) => c.req.header(n)),
        cost: (c) => common.cost((n) => c.req.header(n)),
        key: byUser((c) => common.user((n) => c.req.header(n))),
        ...extra,
      }),
    )
    app.get('/', (c) => c.json({ ok: true }))
    return listen(serve({ fetch: app.fetch, port: 0, hostname: '127.0.0.1' }) as Server)
  },
}

describe.each(Object.keys(adapters))('%s adapter over HTTP', (framework) => {
  it('sets draft headers, answers 429 with Retry-After and JSON, honours skip, key and cost', async () => {
    const limiter = new RateLimiter({
      redis,
      prefix: uniquePrefix(framework),
      algorithm: 'fixed-window',
      limit: 2,
      windowMs: 60_000,
    })
    const base = await adapters[framework]!(limiter)
    const get = (headers: Record<string, string> = {}) => fetch(`${base}/`, { headers })

    const first = await get()
    expect(first.status).toBe(200)
    expect(first.headers.get('ratelimit-policy')).toBe(`"${limiter.options.prefix}";q=2;w=60`)
    expect(first.headers.get('ratelimit')).toMatch(new RegExp(`^"${limiter.options.prefix}";r=1;t=\\d+$`))
    expect(first.headers.get('x-ratelimit-limit')).toBe('2')
    expect((await get()).headers.get('x-ratelimit-remaining')).toBe('0')

    const denied = await get()
    expect(denied.status).toBe(429)
    expect(Number(denied.headers.get('retry-after'))).toBeGreaterThan(0)
    expect(await denied.json()).toMatchObject({ error: 'Too Many Requests', reason: 'limit' })

    const skipped = await get({ 'x-skip': '1' })
    expect(skipped.status).toBe(200)
    expect(skipped.headers.get('ratelimit')).toBeNull()

    // Another user has a budget of their own; a cost of 2 spends all of it.
    expect((await get({ 'x-user': 'u1', 'x-cost': '2' })).status).toBe(200)
    expect((await get({ 'x-user': 'u1' })).status).toBe(429)
    expect((await get({ 'x-user': 'u2' })).status).toBe(200)
  })
})

describe.each(Object.keys(adapters))('%s adapter under hostile input', (framework) => {
  it('a prefix no header can carry is encoded, and a body that cannot be serialized answers 500', async () => {
    const unhandled: unknown[] = []
    const onUnhandled = (e: unknown) => unhandled.push(e)
    process.on('unhandledRejection', onUnhandled)
    process.on('uncaughtException', onUnhandled)
    try {
      const limiter = new RateLimiter({
        redis,
        prefix: `限流${uniquePrefix(framework)}`,
        algorithm: 'fixed-window',
        limit: 1,
        windowMs: 60_000,
      })
      const base = await adapters[framework]!(limiter, { body: () => ({ n: 10n }) })
      const first = await fetch(`${base}/`)
      expect(first.status).toBe(200)
      expect(first.headers.get('ratelimit-policy')).toMatch(/^"%E9%99%90%E6%B5%81/)
      const denied = await fetch(`${base}/`)
      expect(denied.status).toBe(500)
      await new Promise((r) => setTimeout(r, 20))
      expect(unhandled).toEqual([])
    } finally {
      process.off('unhandledRejection', onUnhandled)
      process.off('uncaughtException', onUnhandled)
    }
  })
})

describe('Hono without @hono/node-server', () => {
  it('never keys by a client-written X-Forwarded-For unless trustProxy says how many proxies to trust', async () => {
    const limiter = new RateLimiter({
      redis,
      prefix: uniquePrefix('xff'),
      algorithm: 'fixed-window',
      limit: 1,
      windowMs: 60_000,
    })
    const app = new Hono()
    app.use(honoRateLimit({ limiter }))
    app.get('/', (c) => c.text('ok'))
    // app.request() has no socket: spoofed headers must not buy a fresh bucket each.
    expect((await app.request('/', { headers: { 'x-forwarded-for': '1.1.1.1' } })).status).toBe(200)
    expect((await app.request('/', { headers: { 'x-forwarded-for': '2.2.2.2' } })).status).toBe(429)

    const proxied = new RateLimiter({
      redis,
      prefix: uniquePrefix('xff1'),
      algorithm: 'fixed-window',
      limit: 1,
      windowMs: 60_000,
    })
    const behindProxy = new Hono()
    behindProxy.use(honoRateLimit({ limiter: proxied, trustProxy: 1 }))
    behindProxy.get('/', (c) => c.text('ok'))
    // The client wrote the first entry; our one proxy appended the real address last.
    const via = (real: string) =>
      behindProxy.request('/', { headers: { 'x-forwarded-for': `6.6.6.6, ${real}` } })
    expect((await via('10.0.0.1')).status).toBe(200)
    expect((await via('10.0.0.2')).status).toBe(200)
    expect((await via('10.0.0.1')).status).toBe(429)
    expect(() => honoRateLimit({ limiter, trustProxy: -1 })).toThrow(/trustProxy/)
  })
})

describe('ipKey', () => {
  it('groups IPv6 by /64 and unwraps IPv4-mapped addresses', () => {
    expect(ipKey('2001:db8:1:2:3:4:5:6')).toBe('2001:db8:1:2::/64')
    expect(ipKey('2001:db8:1:2:ffff::9')).toBe('2001:db8:1:2::/64')
    expect(ipKey('2001:db8::1')).toBe('2001:db8:0:0::/64')
    // Loopback stays distinct from every /64; IPv4-mapped forms all key as their IPv4 address.
    expect(ipKey('::1')).toBe('::1')
    expect(ipKey('0:0:0:0:0:0:0:1')).toBe('::1')
    expect(ipKey('::ffff:10.0.0.1')).toBe('10.0.0.1')
    expect(ipKey('::ffff:c633:6402')).toBe('198.51.100.2')
    expect(ipKey('0:0:0:0:0:ffff:c633:6402')).toBe('198.51.100.2')
    expect(ipKey('0:0:0:0:0:FFFF:198.51.100.2')).toBe('198.51.100.2')
    expect(ipKey('fe80::1%eth0')).toBe('fe80:0:0:0::/64')
    // Translated, compatible and NAT64 forms each carry one IPv4 client too.
    expect(ipKey('::ffff:0:1.2.3.4')).toBe('1.2.3.4')
    expect(ipKey('::1.2.3.4')).toBe('1.2.3.4')
    expect(ipKey('64:ff9b::1.2.3.4')).toBe('1.2.3.4')
    // A string that is not an address never shares a bucket with a real /64.
    expect(ipKey('2001:db8:0:0::/64')).not.toBe(ipKey('2001:db8::1'))
    expect(ipKey('unknown')).toBe('unknown')
    expect(ipKey('192.0.2.7')).toBe('192.0.2.7')
  })
})
