import { spawn } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import KeyvRedis from '@keyv/redis'
import { Cache } from '@rp/cache'
import { BentoCache, bentostore } from 'bentocache'
import { memoryDriver } from 'bentocache/drivers/memory'
import { redisDriver } from 'bentocache/drivers/redis'
import { createCache } from 'cache-manager'
import { Redis } from 'ioredis'
import { Keyv } from 'keyv'
import type { Contender, Context } from './compare.js'
import { fmt } from './compare.js'
import { captureBatch, floorOp } from './floor.js'

const KEYS = 1_000
const TTL_MS = 3_600_000
const VALUE = { id: 42, name: 'Ada Lovelace', roles: ['admin', 'editor'], active: true }

async function fill(set: (key: string) => Promise<unknown>): Promise<void> {
  for (let i = 0; i < KEYS; i += 100)
    await Promise.all(Array.from({ length: 100 }, (_, j) => set(`k${i + j}`)))
}

function bento(redis: Redis, prefix: string, withMemory: boolean) {
  const store = withMemory
    ? bentostore()
        .useL1Layer(memoryDriver({ maxItems: 10_000 }))
        .useL2Layer(redisDriver({ connection: redis }))
    : bentostore().useL2Layer(redisDriver({ connection: redis }))
  return new BentoCache({ default: 'main', prefix, stores: { main: store } })
}

export function cacheHitContenders(): Contender[] {
  const rp = (batch: boolean): Contender => ({
    name: `@rp/cache (L1 off${batch ? '' : ', batch: false'})`,
    library: '@rp/cache',
    settings: `new Cache({ prefix, ttlMs: ${TTL_MS}${batch ? '' : ', batch: false'} }).get(key): one script call with the tag check`,
    async setup(redis, prefix) {
      const cache = new Cache({ redis, prefix, ttlMs: TTL_MS, batch })
      await fill((k) => cache.set(k, VALUE))
      return { op: (i) => cache.get(`k${i % KEYS}`), close: () => cache.close() }
    },
  })
  return [
    rp(true),
    rp(false),
    {
      name: 'bentocache (Redis driver, L2 only)',
      library: 'bentocache',
      settings: `BentoCache with bentostore().useL2Layer(redisDriver({ connection: ioredis })), ttl ${TTL_MS} ms`,
      async setup(redis, prefix) {
        const cache = bento(redis, prefix, false)
        await fill((k) => cache.set({ key: k, value: VALUE, ttl: TTL_MS }))
        return { op: (i) => cache.get({ key: `k${i % KEYS}` }), close: () => cache.disconnectAll() }
      },
    },
    {
      name: 'cache-manager + @keyv/redis',
      library: 'cache-manager',
      ownConnection: true,
      settings: `createCache({ stores: [new Keyv({ store: new KeyvRedis(url) })] }) (node-redis connection of its own)`,
      async setup(_redis, prefix, ctx) {
        const cache = createCache({
          stores: [new Keyv({ store: new KeyvRedis(ctx.url), namespace: prefix })],
        })
        await fill((k) => cache.set(k, VALUE, TTL_MS))
        return { op: (i) => cache.get(`k${i % KEYS}`), close: async () => void (await cache.disconnect()) }
      },
    },
    {
      name: '@rp cache read script, tick-batched from a raw ioredis client (the floor of batching)',
      library: 'baseline',
      floorOf: '@rp/cache (L1 off)',
      settings:
        "core's batch wrapper around cache.read with @rp's own KEYS, 16 calls per EVALSHA, raw replies: a batch's cost with no client path around it",
      async setup(redis, prefix, ctx) {
        const cache = new Cache({ redis, prefix, ttlMs: TTL_MS })
        await fill((k) => cache.set(k, VALUE))
        const batch = await captureBatch(ctx, async (capture) => {
          const reader = new Cache({ redis: capture, prefix, ttlMs: TTL_MS })
          await Promise.all(Array.from({ length: 16 }, (_, i) => reader.get(`k${i}`)))
          await reader.close()
        })
        const [entry, tags] = batch.first.keys as [string, string]
        const op = await floorOp(redis, batch, (i) => [entry.replace(/k0$/, `k${i % KEYS}`), tags])
        return { op, close: () => cache.close() }
      },
    },
    {
      name: 'raw ioredis GET',
      library: 'baseline',
      settings: 'GET of the JSON string: the client-side floor for a Redis hit',
      async setup(redis, prefix) {
        await fill((k) => redis.set(`${prefix}:${k}`, JSON.stringify(VALUE), 'PX', TTL_MS))
        return { op: async (i) => JSON.parse((await redis.get(`${prefix}:k${i % KEYS}`))!) }
      },
    },
  ]
}

export function cacheL1Contenders(): Contender[] {
  return [
    {
      name: '@rp/cache (L1 + tracking)',
      library: '@rp/cache',
      settings: 'l1: { maxEntries: 10000, ttlMs: 60000 }, tracking: true',
      async setup(redis, prefix) {
        const cache = new Cache({
          redis,
          prefix,
          ttlMs: TTL_MS,
          l1: { maxEntries: 10_000, ttlMs: 60_000 },
          tracking: true,
        })
        await cache.ready()
        await fill((k) => cache.set(k, VALUE))
        await fill((k) => cache.get(k))
        return { op: (i) => cache.get(`k${i % KEYS}`), close: () => cache.close() }
      },
    },
    {
      name: 'bentocache (memory + Redis)',
      library: 'bentocache',
      settings: 'useL1Layer(memoryDriver({ maxItems: 10000 })).useL2Layer(redisDriver(...))',
      async setup(redis, prefix) {
        const cache = bento(redis, prefix, true)
        await fill((k) => cache.set({ key: k, value: VALUE, ttl: TTL_MS }))
        return { op: (i) => cache.get({ key: `k${i % KEYS}` }), close: () => cache.disconnectAll() }
      },
    },
  ]
}

export interface StampedeRow {
  name: string
  factoryCalls: number
  ms: number
  callers: number
}

const worker = fileURLToPath(new URL('./stampede-worker.ts', import.meta.url))

/** 4 processes × 250 concurrent getOrSet on one cold key; the factory takes 100 ms and counts its calls in Redis. */
export async function cacheStampede(ctx: Context): Promise<StampedeRow[]> {
  const PROCESSES = 4
  const CALLERS = ctx.quick ? 50 : 250
  const rows: StampedeRow[] = []
  const admin = new Redis(ctx.url)
  for (const library of ['@rp/cache', 'bentocache', 'cache-manager']) {
    const ns = `st-${library.replace(/\W/g, '')}-${Date.now().toString(36)}`
    const children = Array.from({ length: PROCESSES }, () => {
      const child = spawn(process.execPath, ['--import', 'tsx', worker], {
        env: { ...process.env, RP_URL: ctx.url, RP_NS: ns, RP_LIB: library, RP_CALLERS: String(CALLERS) },
        stdio: ['ignore', 'pipe', 'inherit'],
      })
      let out = ''
      child.stdout.on('data', (d) => (out += d))
      return new Promise<number>((resolve, reject) =>
        child.on('exit', (code) =>
          code === 0 ? resolve(Number(out.trim())) : reject(new Error(`${library} worker exited ${code}`)),
        ),
      )
    })
    while (Number(await admin.get(`${ns}:ready`)) < PROCESSES) await new Promise((r) => setTimeout(r, 10))
    const started = performance.now()
    await admin.set(`${ns}:go`, '1', 'PX', 60_000)
    const answered = (await Promise.all(children)).reduce((a, b) => a + b, 0)
    rows.push({
      name: library,
      factoryCalls: Number(await admin.get(`${ns}:calls`)),
      ms: performance.now() - started,
      callers: answered,
    })
  }
  admin.disconnect()
  return rows
}

export function stampedeTable(rows: StampedeRow[], callers: number): string[] {
  return [
    `### Cache stampede: 4 processes × ${callers} concurrent getOrSet on one cold key (factory takes 100 ms)`,
    '',
    '| Library | factory calls | time to serve all callers, ms | callers answered |',
    '| --- | ---: | ---: | ---: |',
    ...rows.map((r) => `| ${r.name} | ${r.factoryCalls} | ${fmt(r.ms)} | ${r.callers} |`),
    '',
    stampedeVerdict(rows),
    '',
  ]
}

function stampedeVerdict(rows: StampedeRow[]): string {
  const [ours, ...peers] = rows
  if (!ours || peers.length === 0) return ''
  const fewest = Math.min(...peers.map((p) => p.factoryCalls))
  const fastest = Math.min(...peers.map((p) => p.ms))
  return `**@rp ${ours.factoryCalls < fewest ? 'wins' : 'does not win'} on factory calls** (${ours.factoryCalls} vs ${fewest}) and ${
    ours.ms <= fastest ? 'wins' : 'loses'
  } on time (${fmt(ours.ms)} vs ${fmt(fastest)} ms).`
}
