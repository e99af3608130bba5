import { InvalidArgumentError, keyspace, parseInfo, WaitTimeoutError } from '@rp/core'
import { startRedis } from '@rp/testing'
import { describeEachTarget, eventually, sleep, uniquePrefix } from '@rp/testing/vitest'
import { Redis } from 'ioredis'
import { afterAll, describe, expect, it } from 'vitest'
import { LockTimeoutError } from './errors.js'
import { ReadWriteLock } from './read-write-lock.js'
import { Redlock } from './redlock.js'
import { Semaphore } from './semaphore.js'

describeEachTarget('Semaphore', (target) => {
  const redis = target.client()
  const closers: Array<() => Promise<void>> = []
  afterAll(() => Promise.all(closers.map((c) => c())))

  it('never has more than N holders under 50 concurrent acquirers, and serves them all', async () => {
    const name = uniquePrefix('sem')
    let holders = 0
    let peak = 0
    const worker = async () => {
      const semaphore = new Semaphore({ redis, name, permits: 5, ttlMs: 10_000 })
      closers.push(() => semaphore.close())
      const permit = await semaphore.acquire({ waitMs: 30_000 })
      holders++
      peak = Math.max(peak, holders)
      await sleep(5 + Math.random() * 15)
      holders--
      expect(await permit.release()).toBe('released')
    }
    await Promise.all(Array.from({ length: 50 }, worker))
    expect(peak).toBe(5)
  })

  it('wakes a dead waiter only once: a release drops it from the queue', async () => {
    const name = uniquePrefix('sem')
    const queue = keyspace('lock:semaphore').key(name, 'waiters')
    const semaphore = new Semaphore({ redis, name, permits: 1, ttlMs: 10_000 })
    closers.push(() => semaphore.close())
    const held = await semaphore.acquire()
    await redis.zadd(queue, Date.now() + 4_000, 'ghost')
    const waiting = semaphore.acquire({ waitMs: 5_000 })
    await eventually(async () => (await redis.zcard(queue)) === 2)
    await held.release()
    expect(await redis.zscore(queue, 'ghost')).toBeNull()
    await (await waiting).release()
  })

  it('reclaims permits whose holder vanished', async () => {
    const semaphore = new Semaphore({ redis, name: uniquePrefix('sem'), permits: 1, ttlMs: 150 })
    closers.push(() => semaphore.close())
    const lost = await semaphore.acquire()
    expect(await semaphore.tryAcquire()).toBeNull()
    const next = await semaphore.acquire({ waitMs: 2_000 })
    expect(await lost.extend()).toBe(false)
    await next.release()
  })
})

describeEachTarget('ReadWriteLock', (target) => {
  const redis = target.client()
  const closers: Array<() => Promise<void>> = []
  afterAll(() => Promise.all(closers.map((c) => c())))
  const make = (name: string) => {
    const rw = new ReadWriteLock({ redis, name, ttlMs: 10_000 })
    closers.push(() => rw.close())
    return rw
  }

  it('lets readers share and makes a writer exclusive', async () => {
    const name = uniquePrefix('rw')
    const rw = make(name)
    const [r1, r2] = await Promise.all([rw.read({ waitMs: 0 }), rw.read({ waitMs: 0 })])
    await expect(make(name).write({ waitMs: 100 })).rejects.toBeInstanceOf(LockTimeoutError)
    await r1.release()
    await r2.release()
    const w = await rw.write({ waitMs: 1_000 })
    await expect(make(name).read({ waitMs: 100 })).rejects.toBeInstanceOf(LockTimeoutError)
    await w.release()
    const r3 = await rw.read({ waitMs: 1_000 })
    await r3.release()
  })

  it('does not starve a writer behind a stream of overlapping readers', async () => {
    const name = uniquePrefix('rw')
    const rw = make(name)
    let stop = false
    let readersAfterWriter = 0
    let writerIn = 0
    const readers = (async () => {
      const pending: Array<Promise<void>> = []
      while (!stop) {
        pending.push(
          rw
            .read({ waitMs: 5_000 })
            .then(async (hold) => {
              if (writerIn && performance.now() > writerIn) readersAfterWriter++
              await sleep(60)
              await hold.release()
            })
            .catch(() => {}),
        )
        await sleep(20)
      }
      await Promise.all(pending)
    })()
    await sleep(150)
    const started = performance.now()
    const writer = await make(name).write({ waitMs: 5_000 })
    writerIn = performance.now()
    const waited = writerIn - started
    await sleep(50)
    await writer.release()
    stop = true
    await readers
    expect(waited).toBeLessThan(1_500)
    expect(readersAfterWriter).toBeGreaterThan(0)
  })
})

describe('ReadWriteLock waiters on a server of their own', () => {
  it('wait quietly and are woken by id: one waiting writer and five waiting readers send few commands', async () => {
    const server = await startRedis({ ownServer: true })
    const redis = new Redis(server.url)
    const rw = new ReadWriteLock({ redis, name: 'quiet', ttlMs: 10_000 })
    try {
      const first = await rw.read()
      const waitingWriter = rw.write({ waitMs: 5_000 })
      await sleep(50)
      // The waiting writer's intent holds these readers back.
      const readers = Array.from({ length: 5 }, () => rw.read({ waitMs: 5_000 }))
      await sleep(200)
      await redis.config('RESETSTAT')
      await sleep(1_000)
      const stats = parseInfo(await redis.info('commandstats'))
      const calls = (name: string) => Number(/calls=(\d+)/.exec(stats[`cmdstat_${name}`] ?? 'calls=0')![1])
      // Polling is only the fallback for a lost wake-up: backoff from 100 ms to 1 s per waiter.
      expect(calls('evalsha') + calls('eval')).toBeLessThan(40)
      let released = performance.now()
      await first.release()
      const writer = await waitingWriter
      expect(performance.now() - released).toBeLessThan(150)
      released = performance.now()
      await writer.release()
      const holds = await Promise.all(readers)
      expect(performance.now() - released).toBeLessThan(150)
      await Promise.all(holds.map((h) => h.release()))
    } finally {
      await rw.close()
      redis.disconnect()
      await server.stop()
    }
  })

  it('a release that failed for a connection blip can be retried, for permits and holds alike', async () => {
    const server = await startRedis({ ownServer: true })
    const redis = new Redis(server.url, { enableOfflineQueue: false, lazyConnect: true })
    await redis.connect()
    const semaphore = new Semaphore({ redis, name: 'blip', permits: 1 })
    const rw = new ReadWriteLock({ redis, name: 'blip' })
    try {
      const permit = await semaphore.acquire()
      const hold = await rw.write()
      redis.disconnect()
      await expect(permit.release()).rejects.toThrow()
      await expect(hold.release()).rejects.toThrow()
      while (redis.status !== 'end') await sleep(5)
      await redis.connect()
      expect(await permit.release()).toBe('released')
      expect(await hold.release()).toBe('released')
      expect(await semaphore.tryAcquire()).not.toBeNull()
    } finally {
      await Promise.all([semaphore.close(), rw.close()])
      redis.disconnect()
      await server.stop()
    }
  })
})

describeEachTarget('one hold contract', (target) => {
  const redis = target.client()
  const closers: Array<() => Promise<void>> = []
  afterAll(() => Promise.all(closers.map((c) => c())))

  it('every hold kind offers using(): renewed while fn runs, released after, same handle fields', async () => {
    const semaphore = new Semaphore({ redis, name: uniquePrefix('s'), permits: 1, ttlMs: 300 })
    const rw = new ReadWriteLock({ redis, name: uniquePrefix('rw'), ttlMs: 300 })
    closers.push(
      () => semaphore.close(),
      () => rw.close(),
    )
    const check = async (
      signal: AbortSignal,
      hold: { id: string; expiresAt: number; extend: unknown; release: unknown },
    ) => {
      expect(typeof hold.id).toBe('string')
      expect(hold.expiresAt).toBeGreaterThan(Date.now())
      expect(typeof hold.extend).toBe('function')
      // Longer than the TTL: only renewals keep it.
      await sleep(700)
      expect(signal.aborted).toBe(false)
      return 'done'
    }
    expect(await semaphore.using(check)).toBe('done')
    expect(await semaphore.count()).toBe(0)
    expect(await rw.using('write', check)).toBe('done')
    expect(await rw.using('read', check)).toBe('done')
  })

  it('waiting too long is one error family, naming the resource the caller gave', async () => {
    const name = uniquePrefix('busy')
    const semaphore = new Semaphore({ redis, name, permits: 1 })
    closers.push(() => semaphore.close())
    const permit = await semaphore.acquire()
    const error = await semaphore.acquire({ waitMs: 50 }).catch((e: unknown) => e)
    expect(error).toBeInstanceOf(LockTimeoutError)
    expect(error).toBeInstanceOf(WaitTimeoutError)
    expect(error).toMatchObject({ resource: name, waitMs: 50 })
    await permit.release()
  })
})

describe('Redlock release', () => {
  it('is retried after a release no quorum confirmed', async () => {
    const server = await startRedis({ ownServer: true })
    const client = new Redis(server.url, { enableOfflineQueue: false, lazyConnect: true })
    await client.connect()
    const redlock = new Redlock([client], { force: true })
    try {
      const lock = await redlock.acquire('r', { ttlMs: 60_000 })
      client.disconnect()
      // No instance answered: nothing is known, so it rejects, and calling again retries.
      await expect(lock.release()).rejects.toThrow()
      while (client.status !== 'end') await sleep(5)
      await client.connect()
      expect(await lock.release()).toBe('released')
      const again = await redlock.acquire('r', { ttlMs: 1_000 })
      await again.release()
    } finally {
      client.disconnect()
      await server.stop()
    }
  })
})

describe('input validation', () => {
  // A real client that never connects: validation must fail before any I/O.
  const redis = new Redis({ lazyConnect: true })
  const three = [redis, new Redis({ lazyConnect: true }), new Redis({ lazyConnect: true })]
  it('names the bad option', async () => {
    // One client listed twice would count one instance twice towards the quorum.
    expect(() => new Redlock([redis, redis, three[1]!])).toThrow(/^clients: must list each instance once/)
    expect(() => new Redlock({ clients: [redis, redis], force: true })).toThrow(/^clients:/)
    await expect(
      new Semaphore({ redis, name: 's', permits: 1 }).tryAcquire({ waitMs: 5 } as never),
    ).rejects.toThrow(/^waitMs: is not a known option/)
    expect(() => new Semaphore({ redis, name: 's', permits: 0 })).toThrow(InvalidArgumentError)
    expect(() => new Semaphore({ redis, name: '', permits: 1 })).toThrow(/name/)
    expect(() => new Redlock([redis, redis])).toThrow(/at least 3/)
    expect(() => new Redlock([redis], { force: true })).not.toThrow()
    await expect(new Redlock(three).acquire('r', { ttlMs: 0 })).rejects.toThrow(/ttlMs/)
    expect(() => new Redlock(three, { prefix: 'a{' })).toThrow(/^prefix/)
    expect(() => new Redlock([redis], null as never)).toThrow(/^options/)
    expect(() => new Redlock([redis], { force: 'no' as never })).toThrow(/^force/)
    await expect(
      new Semaphore({ redis, name: 's', permits: 1 }).acquire({ waitMs: Number.NaN }),
    ).rejects.toThrow(/^waitMs/)
    await expect(new ReadWriteLock({ redis, name: 'rw' }).read({ ttlMs: -1 })).rejects.toThrow(/^ttlMs/)
  })
})
