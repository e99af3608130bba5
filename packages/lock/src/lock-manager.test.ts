import { defineScript } from '@rp/core'
import {
  describeEachTarget,
  eventually,
  expectInvalidArguments,
  sleep,
  uniquePrefix,
} from '@rp/testing/vitest'
import { Redis } from 'ioredis'
import { afterAll, describe, expect, it } from 'vitest'
import { LockTimeoutError } from './errors.js'
import { LockKeys } from './lock-keys.js'
import { LockManager } from './lock-manager.js'
import { abandonScript, acquireScript, releaseScript } from './scripts.js'

const keysOf = new WeakMap<LockManager, LockKeys>()
const keyspaceKey = (locks: LockManager, resource: string) => keysOf.get(locks)!.lock(resource)

// A resource that honours fencing: a write lands only with a token above every token it has seen.
const fencedWrite = defineScript<number>({
  name: 'test.fencedWrite',
  keys: 1,
  lua: `
local seen = tonumber(redis.call('HGET', KEYS[1], 'token') or '0')
if tonumber(ARGV[1]) <= seen then return 0 end
redis.call('HSET', KEYS[1], 'token', ARGV[1], 'value', ARGV[2])
redis.call('PEXPIRE', KEYS[1], 60000)
return 1`,
})

describeEachTarget('LockManager', (target) => {
  const redis = target.client()
  const managers: LockManager[] = []
  const manager = (
    options: { ttlMs?: number; waitMs?: number; prefix?: string; handoffMs?: number } = {},
  ) => {
    const prefix = options.prefix ?? uniquePrefix('lock')
    const m = new LockManager({ redis, ...options, prefix })
    keysOf.set(m, new LockKeys(prefix))
    managers.push(m)
    return m
  }
  afterAll(() => Promise.all(managers.map((m) => m.close())))

  it('using() never runs fn when its signal aborts while the lock is being acquired', async () => {
    const locks = manager()
    const controller = new AbortController()
    let ran = false
    const run = locks.using(
      'abort-in-flight',
      async () => {
        ran = true
      },
      { signal: controller.signal },
    )
    // The acquire round trip is in flight now.
    controller.abort(new Error('client went away'))
    await expect(run).rejects.toThrow(/aborted/)
    expect(ran).toBe(false)
    // ...and the lock it got was given back.
    const again = await locks.tryAcquire('abort-in-flight')
    expect(again).not.toBeNull()
    await again!.release()
  })

  it('using() keeps a lock that its holder extended with a shorter TTL', async () => {
    const prefix = uniquePrefix('lock')
    const a = manager({ prefix })
    const b = manager({ prefix })
    await a.using(
      'short-extend',
      async (signal, lock) => {
        expect(await lock.extend(500)).toBe(true)
        await sleep(900)
        // The watchdog renewed before the shorter TTL ran out: nobody else gets it.
        expect(await b.tryAcquire('short-extend')).toBeNull()
        expect(signal.aborted).toBe(false)
      },
      { ttlMs: 30_000 },
    )
  })

  it('a nested reentrant acquire with a shorter TTL does not cut short the outer hold', async () => {
    const prefix = uniquePrefix('lock')
    const a = manager({ prefix })
    const b = manager({ prefix })
    await a.using(
      'nested',
      async (signal) => {
        const inner = await a.acquire('nested', { owner: 'req', reentrant: true, ttlMs: 200 })
        await inner.release()
        await sleep(400)
        expect(await b.tryAcquire('nested')).toBeNull()
        expect(signal.aborted).toBe(false)
      },
      { owner: 'req', reentrant: true, ttlMs: 30_000 },
    )
  })

  it('using() rejects, never throws, when reading its options throws', async () => {
    const a = manager()
    const throwing = {
      get signal(): AbortSignal {
        throw new Error('boom')
      },
    }
    let promise: Promise<unknown> | undefined
    expect(() => {
      promise = a.using('opts', async () => 1, throwing as never)
    }).not.toThrow()
    await expect(promise).rejects.toThrow()
  })

  it('close() tells work still running under using() that its lock is no longer kept', async () => {
    const locks = new LockManager({ redis, prefix: uniquePrefix('close') })
    let held!: () => void
    const holding = new Promise<void>((r) => {
      held = r
    })
    const run = locks.using('busy', (signal) => {
      held()
      return new Promise((r) => signal.addEventListener('abort', r))
    })
    await holding
    await locks.close()
    await expect(run).rejects.toThrow(/closed/)
  })

  it('an acquire retried after a lost reply gets the lock it already holds, with the same token', async () => {
    const prefix = uniquePrefix('retry')
    const keys = new LockKeys(prefix)
    const args = ['owner-1', 30_000, 0, 60_000, 0, 'call-1', 0]
    const scriptKeys = [keys.lock('r'), keys.fence('r'), keys.queue('r')]
    const first = await acquireScript.run(redis, scriptKeys, args)
    const retry = await acquireScript.run(redis, scriptKeys, args)
    expect(first[0]).toBe(1)
    expect(retry[0]).toBe(1)
    expect(retry[1]).toBe(first[1])
    // Another acquire call by the same owner, not reentrant, is still refused.
    expect(
      (await acquireScript.run(redis, scriptKeys, ['owner-1', 30_000, 0, 60_000, 0, 'call-2', 0]))[0],
    ).toBe(0)
    await redis.del(keys.lock('r'))
  })

  it('a release looks at the queue only when a waiter flagged the lock, and a waiter flags each new holder', async () => {
    const prefix = uniquePrefix('flag')
    const keys = new LockKeys(prefix)
    const scriptKeys = [keys.lock('r'), keys.fence('r'), keys.queue('r')]
    const acquire = (owner: string, queueMs: number, queuedBefore: number) =>
      acquireScript.run(redis, scriptKeys, [owner, 30_000, 0, 60_000, queueMs, `${owner}-call`, queuedBefore])
    const release = (owner: string) =>
      releaseScript.run(redis, [keys.lock('r'), keys.queue('r')], [owner, keys.channel('r'), 250])
    expect((await acquire('a', 0, 0))[0]).toBe(1)
    expect(await redis.hget(keys.lock('r'), 'w')).toBeNull()
    expect((await acquire('waiter', 5_000, 0))[0]).toBe(0)
    expect(await redis.hget(keys.lock('r'), 'w')).toBe('1')
    // The holder dies: its hash expires, flag and all, and another caller takes the lock.
    await redis.del(keys.lock('r'))
    expect((await acquire('b', 0, 0))[0]).toBe(1)
    expect(await redis.hget(keys.lock('r'), 'w')).toBeNull()
    // The waiter's retry (at the hint: when the dead holder's lock would lapse) flags the new holder...
    expect((await acquire('waiter', 5_000, 1))[0]).toBe(0)
    // ...so its release reserves the lock for the waiter, which takes it and leaves the queue.
    expect(await release('b')).toBe('released')
    expect(await redis.hget(keys.lock('r'), 'r')).toBe('waiter')
    expect((await acquire('waiter', 5_000, 1))[0]).toBe(1)
    expect(await redis.exists(keys.queue('r'))).toBe(0)
    // Its hash keeps the flag (others may have queued behind it); with nobody queued, the release
    // hands the lock to nobody and leaves it free.
    expect(await redis.hget(keys.lock('r'), 'w')).toBe('1')
    expect(await release('waiter')).toBe('released')
    expect(await redis.exists(keys.lock('r'))).toBe(0)
    // A queued caller that takes a lock no release handed it (its holder died) flags its own hold
    // when others are still queued behind it.
    expect((await acquire('x', 0, 0))[0]).toBe(1)
    expect((await acquire('q1', 5_000, 0))[0]).toBe(0)
    expect((await acquire('q2', 5_000, 0))[0]).toBe(0)
    await redis.del(keys.lock('r'))
    expect((await acquire('q1', 5_000, 1))[0]).toBe(1)
    expect(await redis.hget(keys.lock('r'), 'w')).toBe('1')
    expect(await release('q1')).toBe('released')
    expect(await redis.hget(keys.lock('r'), 'r')).toBe('q2')
    expect((await acquire('q2', 5_000, 1))[0]).toBe(1)
  })

  it("a 'lost' listener that throws becomes an event, never an uncaught exception", async () => {
    const locks = manager()
    const uncaught: unknown[] = []
    const onUncaught = (e: unknown) => uncaught.push(e)
    process.on('uncaughtException', onUncaught)
    process.on('unhandledRejection', onUncaught)
    locks.on('lost', () => {
      throw new Error('listener bug')
    })
    try {
      const run = locks.using(
        'lose-me',
        async (signal) => {
          // Someone deletes the lock behind its holder's back; the next renewal finds it gone.
          await redis.del(keyspaceKey(locks, 'lose-me'))
          await new Promise((r) => signal.addEventListener('abort', r))
        },
        { ttlMs: 300 },
      )
      await expect(run).rejects.toThrow(/lost/)
      await sleep(20)
      expect(uncaught).toEqual([])
    } finally {
      process.off('uncaughtException', onUncaught)
      process.off('unhandledRejection', onUncaught)
    }
  })

  it('excludes a second holder and reports each release outcome', async () => {
    const locks = manager()
    const lock = await locks.acquire('order:42', { ttlMs: 5_000 })
    expect(lock.resource).toBe('order:42')
    expect(lock.expiresAt).toBeGreaterThan(Date.now())
    expect(await locks.tryAcquire('order:42')).toBeNull()
    await expect(locks.acquire('order:42', { waitMs: 100 })).rejects.toBeInstanceOf(LockTimeoutError)
    expect(await lock.isHeld()).toBe(true)
    expect(await lock.release()).toBe('released')
    expect(await lock.release()).toBe('released')
    expect(await lock.isHeld()).toBe(false)

    const short = await locks.acquire('order:43', { ttlMs: 50 })
    await sleep(80)
    expect(await short.release()).toBe('expired')
    const lapsed = await locks.acquire('order:44', { ttlMs: 50 })
    await sleep(80)
    const taker = await locks.acquire('order:44', { ttlMs: 5_000 })
    expect(await lapsed.release()).toBe('not-owner')
    expect(await lapsed.extend(1_000)).toBe(false)
    await taker.release()
  })

  it('mints strictly increasing fencing tokens', async () => {
    const locks = manager()
    const keys = keysOf.get(locks)!
    const tokens: number[] = []
    for (let i = 0; i < 5; i++) {
      const lock = await locks.acquire('fenced', { ttlMs: 1_000 })
      tokens.push(lock.token)
      await lock.release()
    }
    expect(tokens.every((t, i) => i === 0 || t > tokens[i - 1]!)).toBe(true)
    // A counter ahead of the clock (a clock that stepped back, or an acquire of this resource earlier
    // in the same batch, which read the same instant): the next token is one past it.
    const ahead = BigInt(tokens[4]!) + 10n ** 12n
    await redis.set(keys.fence('fenced'), ahead.toString())
    const next = await locks.acquire('fenced', { ttlMs: 1_000 })
    expect(BigInt(next.token)).toBe(ahead + 1n)
    await next.release()
    // A value no acquire wrote is no token, even one that reads as a number: the next one comes
    // from the clock again, still above every token before it.
    let last = Number(ahead + 1n)
    for (const foreign of [
      'not a token, but long enough',
      '0000000000000000005',
      '-1795925614544123',
      '1.000000000000e+15',
      '0x00000000000000FF',
    ]) {
      await redis.set(keys.fence('fenced'), foreign)
      const after = await locks.acquire('fenced', { ttlMs: 1_000 })
      expect(after.token).toBeGreaterThan(tokens[4]!)
      expect(await redis.get(keys.fence('fenced'))).toBe(String(after.token))
      last = after.token
      await after.release()
    }
    expect(last).toBeGreaterThan(tokens[4]!)
  })

  it('rejects a paused holder that lost its lock, through the fencing token', async () => {
    const prefix = uniquePrefix('fence')
    const a = manager({ prefix })
    const b = manager({ prefix })
    const store = `${uniquePrefix('store')}:{fenced}`
    const stale = await a.acquire('account:7', { ttlMs: 200 })
    // The holder's event loop stops for longer than its TTL (a GC pause, a stopped VM).
    Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 300)
    const fresh = await b.acquire('account:7', { ttlMs: 5_000, waitMs: 1_000 })
    expect(fresh.token).toBeGreaterThan(stale.token)
    expect(await fencedWrite.run(redis, [store], [fresh.token, 'fresh'])).toBe(1)
    expect(await fencedWrite.run(redis, [store], [stale.token, 'stale'])).toBe(0)
    expect(await redis.hget(store, 'value')).toBe('fresh')
    expect(await stale.release()).toBe('not-owner')
    await fresh.release()
  })

  it('is reentrant only when asked, keyed on the owner', async () => {
    const locks = manager()
    const first = await locks.acquire('job', { owner: 'worker-1', reentrant: true })
    const again = await locks.acquire('job', { owner: 'worker-1', reentrant: true, waitMs: 0 })
    expect(again.token).toBe(first.token)
    await expect(locks.acquire('job', { owner: 'worker-1', waitMs: 0 })).rejects.toBeInstanceOf(
      LockTimeoutError,
    )
    expect(await again.release()).toBe('released')
    expect(await locks.tryAcquire('job')).toBeNull()
    expect(await first.release()).toBe('released')
    const other = await locks.tryAcquire('job')
    expect(other).not.toBeNull()
    await other!.release()
  })

  it('wakes a waiter by pub/sub within milliseconds of a release', async () => {
    const prefix = uniquePrefix('wake')
    const locks = manager({ prefix })
    const waiter = manager({ prefix })
    for (let round = 0; round < 3; round++) {
      const resource = `wake-${round}`
      const held = await locks.acquire(resource, { ttlMs: 10_000 })
      let acquiredAt = 0
      const waiting = waiter.acquire(resource, { waitMs: 10_000 }).then((l) => {
        acquiredAt = performance.now()
        return l
      })
      // Long enough that the waiter's backoff has grown to hundreds of milliseconds.
      await sleep(1_200)
      const releasedAt = performance.now()
      await held.release()
      const lock = await waiting
      expect(acquiredAt - releasedAt).toBeLessThan(50)
      await lock.release()
    }
  })

  it('hands the lock to waiters in arrival order, waking one at a time', async () => {
    const prefix = uniquePrefix('fifo')
    const holder = manager({ prefix })
    const held = await holder.acquire('queue', { ttlMs: 10_000 })
    const order: string[] = []
    const waiters = ['first', 'second', 'third'].map(async (name, i) => {
      await sleep(i * 150)
      const lock = await manager({ prefix }).acquire('queue', { ttlMs: 10_000, waitMs: 10_000 })
      order.push(name)
      await sleep(20)
      await lock.release()
    })
    await sleep(600)
    await held.release()
    await Promise.all(waiters)
    expect(order).toEqual(['first', 'second', 'third'])
  })

  it('reserves a released lock for the woken waiter, so a barging tryAcquire cannot take it', async () => {
    const prefix = uniquePrefix('barge')
    const locks = manager({ prefix })
    const held = await locks.acquire('r', { ttlMs: 10_000 })
    const waiting = manager({ prefix }).acquire('r', { ttlMs: 10_000, waitMs: 5_000 })
    await eventually(async () => (await redis.zcard(keysOf.get(locks)!.queue('r'))) === 1)
    await held.release()
    // The waiter needs a pub/sub hop to learn of the release; this caller is already here.
    expect(await manager({ prefix }).tryAcquire('r')).toBeNull()
    const lock = await waiting
    expect(await lock.isHeld()).toBe(true)
    await lock.release()
  })

  it('lets the next waiter in after the grace when the woken one never comes', async () => {
    const prefix = uniquePrefix('ghost')
    const locks = manager({ prefix, handoffMs: 100 })
    const held = await locks.acquire('r', { ttlMs: 10_000 })
    // A waiter whose process died: first in the queue (the earlier deadline), never to answer.
    await redis.zadd(keysOf.get(locks)!.queue('r'), Date.now() + 4_000, 'ghost')
    const waiting = manager({ prefix, handoffMs: 100 }).acquire('r', { ttlMs: 10_000, waitMs: 5_000 })
    await eventually(async () => (await redis.zcard(keysOf.get(locks)!.queue('r'))) === 2)
    await held.release()
    const releasedAt = performance.now()
    const lock = await waiting
    // The grace, plus at most one polling interval (capped at 1 s) of the waiter that is left.
    expect(performance.now() - releasedAt).toBeLessThan(100 + 1_000 + 200)
    expect(await redis.zscore(keysOf.get(locks)!.queue('r'), 'ghost')).toBeNull()
    await lock.release()
  })

  it('passes on a reservation its waiter gave up, without waiting out the grace', async () => {
    const prefix = uniquePrefix('abandon')
    const locks = manager({ prefix })
    const held = await locks.acquire('r', { ttlMs: 10_000 })
    const waiting = manager({ prefix }).acquire('r', { ttlMs: 10_000, waitMs: 5_000 })
    await eventually(async () => (await redis.zcard(keysOf.get(locks)!.queue('r'))) === 1)
    await held.release()
    const lock = await waiting
    // As if that waiter had been woken for a reservation and aborted before taking it.
    await lock.release()
    await redis.hset(keysOf.get(locks)!.lock('r'), 'r', 'quitter')
    await redis.pexpire(keysOf.get(locks)!.lock('r'), 10_000)
    const next = manager({ prefix }).acquire('r', { ttlMs: 10_000, waitMs: 5_000 })
    await eventually(async () => (await redis.zcard(keysOf.get(locks)!.queue('r'))) === 1)
    const started = performance.now()
    expect(
      await abandonScript.run(
        redis,
        [keysOf.get(locks)!.lock('r'), keysOf.get(locks)!.queue('r')],
        ['quitter', keysOf.get(locks)!.channel('r'), 250],
      ),
    ).toBe(1)
    await (await next).release()
    expect(performance.now() - started).toBeLessThan(200)
  })

  it('using() renews past the TTL and releases afterwards', async () => {
    const locks = manager()
    const result = await locks.using(
      'long-job',
      async (signal, lock) => {
        await sleep(700)
        expect(signal.aborted).toBe(false)
        expect(await lock.isHeld()).toBe(true)
        return 'done'
      },
      { ttlMs: 300 },
    )
    expect(result).toBe('done')
    const next = await locks.tryAcquire('long-job')
    expect(next).not.toBeNull()
    await next!.release()
  })

  it('await using releases on scope exit', async () => {
    const locks = manager()
    {
      await using held = await locks.acquire('scoped', { ttlMs: 5_000 })
      expect(await held.isHeld()).toBe(true)
    }
    const after = await locks.tryAcquire('scoped')
    expect(after).not.toBeNull()
    await after!.release()
  })
})

describe('LockManager input validation', () => {
  // A real client that never connects: validation must fail before any I/O.
  const redis = new Redis({ lazyConnect: true })
  it('names the bad option', async () => {
    const locks = new LockManager({ redis })
    // Promise functions reject, never throw, and name the option; nothing reaches Redis.
    const calls: Array<[() => Promise<unknown>, RegExp]> = [
      [() => locks.acquire('r', { ttlMs: 0 }), /^ttlMs/],
      [() => locks.acquire('r', { ttlMs: 1.5 }), /^ttlMs/],
      [() => locks.acquire('r', { waitMs: -1 }), /^waitMs/],
      [() => locks.acquire('r', { waitMs: 2 ** 31 }), /^waitMs/],
      [() => locks.acquire('', {}), /^resource/],
      [() => locks.acquire('r', null as never), /^options/],
      [() => locks.acquire('r', { signal: 'x' as never }), /^signal/],
      [() => locks.tryAcquire('', {}), /^resource/],
      [() => locks.using('r', null as never), /^fn/],
      // Stored as UTF-8, where a lone surrogate becomes U+FFFD: two owners would be one.
      [() => locks.acquire('r', { owner: 'w\uD800' }), /^owner: must be well-formed/],
    ]
    await expectInvalidArguments(calls)
    expect(() => new LockManager({ redis, ttlMs: -5 })).toThrow(/ttlMs/)
    expect(() => new LockManager({ redis, batch: 1 as never })).toThrow(/^batch:/)
  })
})
