import { type RedisServer, startRedis, startTcpProxy } from '@rp/testing'
import { Redis } from 'ioredis'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { LockLostError, LockTimeoutError, RedlockQuorumError } from './errors.js'
import { LockManager } from './lock-manager.js'
import { Redlock } from './redlock.js'

const unhandled: unknown[] = []
const onUnhandled = (reason: unknown) => unhandled.push(reason)
beforeAll(() => {
  process.on('unhandledRejection', onUnhandled)
})
afterAll(() => {
  process.off('unhandledRejection', onUnhandled)
})

describe('LockManager when Redis dies', () => {
  it('aborts the signal of using(), emits lost, rejects with LockLostError, and the process survives', async () => {
    const server = await startRedis({ ownServer: true })
    const redis = new Redis(server.url, { maxRetriesPerRequest: 1, retryStrategy: () => 100 }).on(
      'error',
      () => {},
    )
    const locks = new LockManager({ redis, prefix: 'fault', timeoutMs: 200 })
    const lost: LockLostError[] = []
    locks.on('lost', (error) => lost.push(error))
    try {
      let abortedWith: unknown
      let started!: () => void
      const holding = new Promise<void>((r) => {
        started = r
      })
      const run = locks.using(
        'job',
        (signal) =>
          new Promise<string>((resolve) => {
            started()
            signal.addEventListener('abort', () => {
              abortedWith = signal.reason
              resolve('stopped')
            })
          }),
        { ttlMs: 300 },
      )
      // Only once the lock is held: a loaded machine may take longer than any fixed pause.
      await holding
      await server.kill()
      await expect(run).rejects.toBeInstanceOf(LockLostError)
      expect(abortedWith).toBeInstanceOf(LockLostError)
      expect(lost).toHaveLength(1)
      expect(unhandled).toEqual([])
    } finally {
      await locks.close()
      redis.disconnect()
      await server.stop()
    }
  })
})

describe('LockManager when Redis stalls', () => {
  it('waits for a hanging renewal without spinning the watchdog, then reports the lock lost', async () => {
    const server = await startRedis({ ownServer: true })
    const redis = new Redis(server.url, { maxRetriesPerRequest: 1 }).on('error', () => {})
    const locks = new LockManager({ redis, prefix: 'stall', timeoutMs: 300 })
    // A timer armed for an in-flight renewal's Infinity would fire every millisecond, each time
    // with this warning.
    const warnings: Error[] = []
    const onWarning = (w: Error) => warnings.push(w)
    process.on('warning', onWarning)
    try {
      let held!: () => void
      const holding = new Promise<void>((r) => {
        held = r
      })
      const run = locks.using(
        'job',
        (signal) =>
          new Promise((r) => {
            held()
            signal.addEventListener('abort', r)
          }),
        { ttlMs: 300 },
      )
      await holding
      await server.pause()
      await expect(run).rejects.toBeInstanceOf(LockLostError)
      await new Promise((r) => setImmediate(r))
      expect(warnings.map((w) => w.name)).not.toContain('TimeoutOverflowWarning')
      expect(unhandled).toEqual([])
    } finally {
      process.off('warning', onWarning)
      await server.resume()
      await locks.close()
      redis.disconnect()
      await server.stop()
    }
  })
})

describe("LockManager when only the holder's connection stalls", () => {
  it('aborts the holder with a third of the TTL left, before anyone else can take the lock', async () => {
    const server = await startRedis({ ownServer: true })
    const proxy = await startTcpProxy(server.port)
    const holderClient = new Redis(proxy.url, { maxRetriesPerRequest: 1 }).on('error', () => {})
    const otherClient = new Redis(server.url)
    // The default timeoutMs (1000) does not fit in a third of this TTL: the watchdog's own
    // deadline must win over the renewal in flight.
    const holder = new LockManager({ redis: holderClient, prefix: 'split' })
    const other = new LockManager({ redis: otherClient, prefix: 'split' })
    try {
      let abortedAt = Number.NaN
      let held!: () => void
      const holding = new Promise<void>((r) => {
        held = r
      })
      const started = performance.now()
      const run = holder
        .using(
          'job',
          (signal) =>
            new Promise((resolve) => {
              held()
              signal.addEventListener('abort', () => {
                abortedAt = performance.now() - started
                resolve('stopped')
              })
            }),
          { ttlMs: 1_200 },
        )
        .catch((e: unknown) => e)
      await holding
      proxy.stall()
      let acquiredAt = Number.NaN
      while (Number.isNaN(acquiredAt) && performance.now() - started < 5_000) {
        const lock = await other.tryAcquire('job')
        if (lock) acquiredAt = performance.now() - started
        else await new Promise((r) => setTimeout(r, 10))
      }
      // Aborted, with more than a quarter of the TTL to spare before another client had the lock.
      expect(Number.isNaN(abortedAt)).toBe(false)
      expect(acquiredAt - abortedAt).toBeGreaterThan(300)
      proxy.resume()
      expect(await run).toBeInstanceOf(LockLostError)
      expect(unhandled).toEqual([])
    } finally {
      proxy.resume()
      await Promise.all([holder.close(), other.close()])
      holderClient.disconnect()
      otherClient.disconnect()
      await proxy.close()
      await server.stop()
    }
  })
})

describe('a wait while Redis is paused', () => {
  it('settles within waitMs plus one timeoutMs: leaving the queue does not hold the answer', async () => {
    const server = await startRedis({ ownServer: true })
    const redis = new Redis(server.url).on('error', () => {})
    const locks = new LockManager({ redis, prefix: 'paused-wait', timeoutMs: 600 })
    try {
      await locks.acquire('job')
      await server.pause()
      const started = performance.now()
      const failure = await locks.acquire('job', { waitMs: 100 }).catch((e: unknown) => e)
      const took = performance.now() - started
      expect(failure).toBeInstanceOf(LockTimeoutError)
      // The attempt in flight at the deadline runs out its timeoutMs; nothing else is waited for.
      expect(took).toBeLessThan(100 + 600 + 300)
    } finally {
      await server.resume()
      await locks.close()
      redis.disconnect()
      await server.stop()
    }
  })
})

describe('LockManager.close() while Redis is paused', () => {
  it('settles within about a second even with a plain ioredis client and a live subscriber', async () => {
    const server = await startRedis({ ownServer: true })
    const redis = new Redis(server.url).on('error', () => {})
    const locks = new LockManager({ redis, prefix: 'close', timeoutMs: 200 })
    try {
      const held = await locks.acquire('job')
      // A waiter opens the pub/sub connection that close() must end.
      const waiting = locks.acquire('job', { waitMs: 300 }).catch(() => null)
      await new Promise((r) => setTimeout(r, 100))
      await server.pause()
      await waiting
      const started = performance.now()
      await locks.close()
      expect(performance.now() - started).toBeLessThan(2_500)
      void held
    } finally {
      await server.resume()
      redis.disconnect()
      await server.stop()
    }
  })
})

describe('LockManager across a short stall', () => {
  it('retries a renewal that times out and keeps the lock when Redis answers again in time', async () => {
    const server = await startRedis({ ownServer: true })
    const redis = new Redis(server.url, { maxRetriesPerRequest: 1 }).on('error', () => {})
    const locks = new LockManager({ redis, prefix: 'blip', timeoutMs: 200 })
    const lost: LockLostError[] = []
    locks.on('lost', (error) => lost.push(error))
    try {
      let aborted = false
      const result = await locks.using(
        'job',
        async (signal, lock) => {
          signal.addEventListener('abort', () => {
            aborted = true
          })
          // The first renewal is due at 1 s and times out against the paused server; the lock
          // stays certain until ~3 s, so the watchdog may retry until ~2 s.
          await new Promise((r) => setTimeout(r, 50))
          await server.pause()
          await new Promise((r) => setTimeout(r, 1_350))
          await server.resume()
          await new Promise((r) => setTimeout(r, 1_600))
          expect(await lock.isHeld()).toBe(true)
          return 'done'
        },
        { ttlMs: 3_000 },
      )
      expect(result).toBe('done')
      expect(aborted).toBe(false)
      expect(lost).toEqual([])
    } finally {
      await server.resume()
      await locks.close()
      redis.disconnect()
      await server.stop()
    }
  })
})

describe('Redlock with one instance stalled', () => {
  it('using() keeps the lock: a slow acquire is not counted against its validity twice', async () => {
    const trio = await Promise.all([1, 2, 3].map(() => startRedis({ ownServer: true })))
    const clients = trio.map((s) => new Redis(s.url, { maxRetriesPerRequest: 1 }).on('error', () => {}))
    try {
      await Promise.all(clients.map((c) => c.ping()))
      // The paused instance costs the whole 500 ms instanceTimeoutMs on every call.
      await trio[0]!.pause()
      const redlock = new Redlock({ clients })
      const aborted = await redlock.using(
        'slow',
        async (signal) => {
          await new Promise((r) => setTimeout(r, 2_600))
          return signal.aborted
        },
        { ttlMs: 4_000 },
      )
      expect(aborted).toBe(false)
    } finally {
      await trio[0]!.resume()
      for (const c of clients) c.disconnect()
      await Promise.all(trio.map((s) => s.stop()))
    }
  })
})

describe('Redlock', () => {
  let servers: RedisServer[] = []
  let clients: Redis[] = []
  beforeAll(async () => {
    servers = await Promise.all([1, 2, 3].map(() => startRedis({ ownServer: true })))
    clients = servers.map((s) =>
      new Redis(s.url, { maxRetriesPerRequest: 1, retryStrategy: () => 200 }).on('error', () => {}),
    )
  })
  afterAll(async () => {
    for (const c of clients) c.disconnect()
    await Promise.all(servers.map((s) => s.stop()))
  })

  it('acquires with all instances, excludes a second acquirer, and releases everywhere', async () => {
    const redlock = new Redlock(clients)
    const lock = await redlock.acquire('res', { ttlMs: 2_000 })
    expect(lock.validityMs).toBeGreaterThan(1_900)
    await expect(redlock.acquire('res', { ttlMs: 2_000, waitMs: 100 })).rejects.toBeInstanceOf(
      RedlockQuorumError,
    )
    expect(await lock.release()).toBe('released')
    const again = await redlock.acquire('res', { ttlMs: 2_000 })
    await again.release()
    // using(): renewed past its TTL by the watchdog, released afterwards.
    const result = await redlock.using(
      'res',
      async (signal) => {
        await new Promise((r) => setTimeout(r, 500))
        return signal.aborted ? 'lost' : 'done'
      },
      { ttlMs: 300 },
    )
    expect(result).toBe('done')
    const free = await redlock.acquire('res', { ttlMs: 1_000 })
    await free.release()
  })

  it('still acquires with 1 of 3 instances dead, and fails cleanly within waitMs with 2 dead', async () => {
    // Nearby instances: a short per-instance budget, so a dead one costs little.
    const redlock = new Redlock(clients, { instanceTimeoutMs: 50 })
    await servers[0]!.kill()
    const lock = await redlock.acquire('res2', { ttlMs: 2_000, waitMs: 1_000 })
    expect(await lock.extend(2_000)).toBe(true)
    await lock.release()
    await servers[1]!.kill()
    const started = performance.now()
    const failure = await redlock.acquire('res3', { ttlMs: 2_000, waitMs: 300 }).catch((e: unknown) => e)
    expect(failure).toBeInstanceOf(RedlockQuorumError)
    expect((failure as RedlockQuorumError).acquired).toBe(1)
    expect(performance.now() - started).toBeLessThan(300 + 300)
    expect(unhandled).toEqual([])
  })
})
