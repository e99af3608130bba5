import { LockManager } from '@rp/lock'
import { Redlock as SesameRedlock } from '@sesamecare-oss/redlock'
import { Redis } from 'ioredis'
import { Mutex } from 'redis-semaphore'
import type { Contender, Context } from './compare.js'
import { CLIENT_OPTIONS, fmt } from './compare.js'
import { captureBatches, floorOp } from './floor.js'
import { serverCommandCount } from './measure.js'

const TTL_MS = 10_000
const RELEASE_LUA = `if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end return 0`

export function lockContenders(): Contender[] {
  const rp = (batch: boolean): Contender => ({
    name: `@rp/lock LockManager${batch ? '' : ' (batch: false)'}`,
    library: '@rp/lock',
    settings: `acquire(resource, { ttlMs: ${TTL_MS}, waitMs: 0 }) + release() (fencing token minted in the acquire script)${batch ? '' : ', batch: false'}`,
    async setup(redis, prefix) {
      const locks = new LockManager({ redis, prefix, batch })
      return {
        op: async (i) => (await locks.acquire(`r${i}`, { ttlMs: TTL_MS, waitMs: 0 })).release(),
        close: () => locks.close(),
      }
    },
  })
  return [
    rp(true),
    rp(false),
    {
      name: 'redis-semaphore Mutex',
      library: 'redis-semaphore',
      settings: `new Mutex(ioredis, key, { lockTimeout: ${TTL_MS}, refreshInterval: 0 }): acquire() + release()`,
      async setup(redis, prefix) {
        return {
          op: async (i) => {
            const mutex = new Mutex(redis, `${prefix}:r${i}`, { lockTimeout: TTL_MS, refreshInterval: 0 })
            await mutex.acquire()
            await mutex.release()
          },
        }
      },
    },
    {
      name: '@sesamecare-oss/redlock (1 instance)',
      library: '@sesamecare-oss/redlock',
      settings: `new Redlock([ioredis], { retryCount: 0 }): acquire([key], ${TTL_MS}) + release()`,
      async setup(redis, prefix) {
        const redlock = new SesameRedlock([redis], { retryCount: 0 })
        redlock.on('error', () => {})
        return { op: async (i) => (await redlock.acquire([`${prefix}:r${i}`], TTL_MS)).release() }
      },
    },
    {
      name: '@rp lock scripts, tick-batched from a raw ioredis client (the floor of batching)',
      library: 'baseline',
      floorOf: '@rp/lock LockManager',
      settings:
        "core's batch wrappers around lock.acquire and lock.release with @rp's own KEYS and ARGV, 16 calls per EVALSHA, raw replies: a batch's cost with no client path around it",
      async setup(redis, prefix, ctx) {
        const [acquire, release] = await captureBatches(
          ctx,
          async (capture) => {
            const locks = new LockManager({ redis: capture, prefix })
            await Promise.all(
              Array.from({ length: 16 }, async (_, i) =>
                (await locks.acquire(`r${i}`, { ttlMs: TTL_MS, waitMs: 0 })).release(),
              ),
            )
            await locks.close()
          },
          2,
        )
        // Per resource: its lock, fence and queue keys, and a fresh owner and call id per cycle.
        const keys = (template: string[]) => (i: number) => template.map((k) => k.replace('{r0}', `{r${i}}`))
        const acquireOp = await floorOp(redis, acquire!, keys(acquire!.first.keys), (i) => {
          const args = [...acquire!.first.args]
          args[0] = `o${i}`
          args[5] = `c${i}`
          return args
        })
        const releaseOp = await floorOp(redis, release!, keys(release!.first.keys), (i) => {
          const args = [...release!.first.args]
          args[0] = `o${i}`
          args[1] = String(args[1]).replace('{r0}', `{r${i}}`)
          return args
        })
        return {
          op: async (i) => {
            const [held] = (await acquireOp(i)) as [number]
            if (held === 1) await releaseOp(i)
          },
        }
      },
    },
    {
      name: 'raw ioredis SET NX PX + EVALSHA release',
      library: 'baseline',
      settings: 'the minimal safe lock: two commands',
      async setup(redis, prefix) {
        const sha = (await redis.script('LOAD', RELEASE_LUA)) as string
        return {
          op: async (i) => {
            await redis.set(`${prefix}:r${i}`, 'v', 'PX', TTL_MS, 'NX')
            await redis.evalsha(sha, 1, `${prefix}:r${i}`, 'v')
          },
        }
      },
    },
  ]
}

export interface HandoffRow {
  name: string
  handoffs: number
  /** Commands Redis ran per hand-off, waiting included: the cost of polling. */
  serverCommandsPerHandoff: number
  p50Ms: number
  p99Ms: number
  meanMs: number
  /** Share of hand-offs that went to a worker other than the one that released: fairness. */
  passedOnShare: number
  /** The longest any one acquire waited: starvation. */
  longestWaitMs: number
}

/**
 * Contention: WORKERS clients loop on one resource; each hold lasts ~1 ms. The figure is the gap
 * between one holder's release and the next holder's acquire: how fast a waiter learns the lock is free.
 */
export async function lockHandoff(ctx: Context): Promise<HandoffRow[]> {
  const WORKERS = 16
  const target = ctx.quick ? 40 : 400
  type Locker = (resource: string) => Promise<() => Promise<unknown>>
  const libraries: Array<{
    name: string
    make: (redis: Redis) => { lock: Locker; close?: () => Promise<void> }
  }> = [
    {
      name: '@rp/lock LockManager (pub/sub wake-up)',
      make: (redis) => {
        const locks = new LockManager({ redis, prefix: 'handoff-rp' })
        return {
          lock: async (r) => {
            const l = await locks.acquire(r, { ttlMs: TTL_MS, waitMs: 60_000 })
            return () => l.release()
          },
          close: () => locks.close(),
        }
      },
    },
    {
      name: 'redis-semaphore Mutex (defaults: retryInterval 10 ms)',
      make: (redis) => ({
        lock: async (r) => {
          const m = new Mutex(redis, `handoff-rs:${r}`, {
            lockTimeout: TTL_MS,
            acquireTimeout: 60_000,
            refreshInterval: 0,
          })
          await m.acquire()
          return () => m.release()
        },
      }),
    },
    {
      name: '@sesamecare-oss/redlock (defaults: retryDelay 200 ms, jitter 200 ms)',
      make: (redis) => {
        const redlock = new SesameRedlock([redis], { retryCount: -1 })
        redlock.on('error', () => {})
        return {
          lock: async (r) => {
            const l = await redlock.acquire([`handoff-rl:${r}`], TTL_MS)
            return () => l.release()
          },
        }
      },
    },
  ]
  const rows: HandoffRow[] = []
  for (const lib of libraries) {
    const clients = Array.from({ length: WORKERS }, () => new Redis(ctx.url, CLIENT_OPTIONS))
    const made = clients.map((c) => lib.make(c))
    let lastRelease = 0
    let lastHolder = -1
    let passedOn = 0
    let longestWaitMs = 0
    const gaps: number[] = []
    const before = await serverCommandCount(ctx.admin)
    let done = 0
    await Promise.all(
      made.map(async (m, worker) => {
        while (done < target) {
          const askedAt = performance.now()
          const release = await m.lock('one')
          const acquiredAt = performance.now()
          longestWaitMs = Math.max(longestWaitMs, acquiredAt - askedAt)
          if (lastRelease > 0) gaps.push(acquiredAt - lastRelease)
          if (lastHolder !== -1 && lastHolder !== worker) passedOn++
          lastHolder = worker
          done++
          await new Promise((r) => setTimeout(r, 1))
          lastRelease = performance.now()
          await release()
        }
      }),
    )
    const commands = (await serverCommandCount(ctx.admin)) - before
    for (const m of made) await m.close?.()
    for (const c of clients) c.disconnect()
    gaps.sort((a, b) => a - b)
    rows.push({
      name: lib.name,
      handoffs: gaps.length,
      serverCommandsPerHandoff: commands / Math.max(1, done),
      p50Ms: gaps[Math.floor(gaps.length * 0.5)] ?? Number.NaN,
      p99Ms: gaps[Math.floor(gaps.length * 0.99)] ?? Number.NaN,
      meanMs: gaps.reduce((a, b) => a + b, 0) / gaps.length,
      passedOnShare: passedOn / Math.max(1, gaps.length),
      longestWaitMs,
    })
  }
  return rows
}

export function handoffTable(rows: HandoffRow[]): string[] {
  return [
    '### Lock contention: 16 workers on one resource, time from release to the next acquire',
    '',
    '| Library | hand-offs | p50 ms | p99 ms | mean ms | to another worker | longest wait ms | Redis commands per hand-off (waiting included) |',
    '| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |',
    ...rows.map(
      (r) =>
        `| ${r.name} | ${r.handoffs} | ${fmt(r.p50Ms, 2)} | ${fmt(r.p99Ms, 2)} | ${fmt(r.meanMs, 2)} | ${fmt(r.passedOnShare * 100, 0)} % | ${fmt(r.longestWaitMs, 0)} | ${fmt(r.serverCommandsPerHandoff, 1)} |`,
    ),
    '',
    'A hand-off "to another worker" is one where the lock went to someone other than the worker that just released it: a fair lock passes it on every time; an unfair one lets the releaser take it straight back while the others poll. The longest wait shows the cost of that for the worker left behind.',
    '',
    handoffVerdict(rows),
    '',
  ]
}

function handoffVerdict(rows: HandoffRow[]): string {
  const [ours, ...peers] = rows
  if (!ours || peers.length === 0) return ''
  const bestP50 = Math.min(...peers.map((p) => p.p50Ms))
  const bestP99 = Math.min(...peers.map((p) => p.p99Ms))
  const parts = [
    ours.p50Ms <= bestP50 ? 'wins on p50' : `loses on p50 (${fmt(ours.p50Ms, 2)} vs ${fmt(bestP50, 2)} ms)`,
    ours.p99Ms <= bestP99 ? 'wins on p99' : `loses on p99 (${fmt(ours.p99Ms, 2)} vs ${fmt(bestP99, 2)} ms)`,
    ours.longestWaitMs <= Math.min(...peers.map((p) => p.longestWaitMs))
      ? 'wins on the longest wait'
      : 'loses on the longest wait',
  ]
  return `**@rp ${parts.join(', ')}** against the best peer.`
}
