import { SessionStore } from '@rp/session'
import { ExpressSessionStore } from '@rp/session/express'
import { RedisStore as ConnectRedis10 } from 'connect-redis'
import { RedisStore as ConnectRedis8 } from 'connect-redis-8'
import type { Store } from 'express-session'
import type { Redis } from 'ioredis'
import { createClient } from 'redis'
import type { Contender, Context } from './compare.js'

export const SESSIONS = 1_000
const TTL_MS = 86_400_000

/** A logged-in user's session of about 1 KiB, as express-session stores it. */
function sessionData(n: number): Record<string, unknown> {
  return {
    cookie: {
      originalMaxAge: TTL_MS,
      expires: new Date(Date.now() + TTL_MS).toISOString(),
      httpOnly: true,
      path: '/',
    },
    user: { id: n, name: `user ${n}`, roles: ['member'] },
    cart: Array.from({ length: 19 }, (_, i) => ({ sku: `SKU-${n}-${i}`, qty: 1 + (i % 3), price: 9.99 + i })),
    theme: 'dark',
    visits: 0,
  }
}

type Callback = (error: unknown, value?: unknown) => void
const call = <T>(fn: (cb: Callback) => void) =>
  new Promise<T>((resolve, reject) => fn((e, v) => (e ? reject(e) : resolve(v as T))))

/**
 * What express-session does with a store on each request: get, rebuild the session (createSession),
 * then set it when the handler changed it, else touch it. One request in four changes the session.
 */
function requestFlow(store: Store) {
  return async (i: number) => {
    const sid = `sid-${i % SESSIONS}`
    const data = await call<Record<string, unknown>>((cb) => store.get(sid, cb))
    const req = { sessionID: sid, sessionStore: store } as never
    const session = store.createSession(req, data as never) as unknown as Record<string, unknown>
    if (i % 4 === 0) {
      session.visits = i
      await call<void>((cb) => store.set(sid, session as never, cb))
    } else await call<void>((cb) => store.touch!(sid, session as never, cb as never))
  }
}

async function fill(store: Store): Promise<void> {
  for (let i = 0; i < SESSIONS; i += 100)
    await Promise.all(
      Array.from({ length: 100 }, (_, j) =>
        call<void>((cb) => store.set(`sid-${i + j}`, sessionData(i + j) as never, cb)),
      ),
    )
}

interface StoreBuilder {
  name: string
  library: string
  settings: string
  ownConnection?: boolean
  build(redis: Redis, prefix: string, ctx: Context): Promise<{ store: Store; close?: () => Promise<void> }>
}

const rp = (batch: boolean): StoreBuilder => ({
  name: `@rp/session (express store${batch ? '' : ', batch: false'})`,
  library: '@rp/session',
  settings: `new ExpressSessionStore({ sessions: new SessionStore({ redis, prefix, idleTtlMs: 86400000${batch ? '' : ', batch: false'} }) })`,
  async build(redis, prefix) {
    const store = new ExpressSessionStore({
      sessions: new SessionStore({ redis, prefix, idleTtlMs: TTL_MS, batch }),
    })
    return { store, close: async () => store.close() }
  },
})

const builders: StoreBuilder[] = [
  rp(true),
  rp(false),
  {
    name: 'connect-redis 10 (node-redis)',
    library: 'connect-redis@10',
    ownConnection: true,
    settings: 'new RedisStore({ client: createClient({ url }), prefix }) (redis 6.3.1, its only client)',
    async build(_redis, prefix, ctx) {
      const client = createClient({ url: ctx.url })
      await client.connect()
      return { store: new ConnectRedis10({ client, prefix }), close: async () => void client.destroy() }
    },
  },
  {
    name: 'connect-redis 8 (ioredis)',
    library: 'connect-redis@8',
    settings: 'new RedisStore({ client: ioredis, prefix }) (8.x, the last line with ioredis)',
    async build(redis, prefix) {
      return { store: new ConnectRedis8({ client: redis, prefix }) }
    },
  },
]

function contenders(operation: (store: Store) => (i: number) => Promise<unknown>): Contender[] {
  return builders.map((b) => ({
    name: b.name,
    library: b.library,
    settings: b.settings,
    ...(b.ownConnection ? { ownConnection: true } : {}),
    async setup(redis, prefix, ctx) {
      const { store, close } = await b.build(redis, prefix, ctx)
      await fill(store)
      return { op: operation(store), ...(close ? { close } : {}) }
    },
  }))
}

export function sessionFlowContenders(): Contender[] {
  return contenders(requestFlow)
}

export function sessionGetContenders(): Contender[] {
  return contenders((store) => (i) => call((cb) => store.get(`sid-${i % SESSIONS}`, cb)))
}

/** MEMORY USAGE of one 1 KiB session, per store. */
export async function sessionMemory(
  redis: Redis,
  ctx: Context,
): Promise<Array<{ name: string; bytes: number; jsonBytes: number }>> {
  const out: Array<{ name: string; bytes: number; jsonBytes: number }> = []
  for (const [i, b] of builders.entries()) {
    // The same store with batching off writes the same keys.
    if (b.name.includes('batch: false')) continue
    const prefix = `mem${i}`
    const { store, close } = await b.build(redis, prefix, ctx)
    await call<void>((cb) => store.set('sid-mem', sessionData(1) as never, cb))
    const keys: string[] = []
    let cursor = '0'
    do {
      const [next, found] = await redis.scan(cursor, 'MATCH', `${prefix}*`, 'COUNT', 100)
      cursor = next
      keys.push(...found)
    } while (cursor !== '0')
    let bytes = 0
    for (const key of keys) bytes += Number(await redis.memory('USAGE', key, 'SAMPLES', '0'))
    out.push({ name: b.name, bytes, jsonBytes: JSON.stringify(sessionData(1)).length })
    await close?.()
  }
  return out
}
