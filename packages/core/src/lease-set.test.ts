import { randomUUID } from 'node:crypto'
import { describeEachTarget, uniquePrefix } from '@rp/testing/vitest'
import { afterAll, expect, it } from 'vitest'
import { HoldLostError, WaitTimeoutError } from './errors.js'
import { RedisGuard } from './guard.js'
import { keyspace } from './keys.js'
import { type LeaseKeys, LeaseSet } from './lease-set.js'
import { Notifier } from './notifier.js'
import { Watchdog } from './watchdog.js'

describeEachTarget('LeaseSet', (target) => {
  const redis = target.client()
  const notifier = new Notifier(redis)
  const guard = new RedisGuard(redis, 1_000)
  const leases = new LeaseSet({
    package: 'test',
    redis,
    guard,
    notifier,
    name: 'test',
  })
  const watchdog = new Watchdog('test')
  afterAll(async () => {
    watchdog.close()
    await notifier.close()
  })
  const keysFor = (): LeaseKeys => {
    const ks = keyspace(uniquePrefix('leases'))
    const set = ks.key('r', 'set')
    return { set, queue: ks.key('r', 'queue'), channel: `${set}:released` }
  }
  const timeout = (_e: unknown, hint: number) => new WaitTimeoutError('r', 0, `hint ${hint}`)

  it('grants at most `limit`, counts them, and a release frees exactly one slot', async () => {
    const keys = keysFor()
    const grants = await Promise.all(
      Array.from({ length: 5 }, () => leases.attempt(keys, 2, 30_000, randomUUID())),
    )
    const held = grants.filter((g) => g.grant).map((g) => leases.hold(keys, g.grant!, 30_000, {}))
    expect(held).toHaveLength(2)
    expect(await leases.count(keys)).toBe(2)
    expect(await held[0]!.release()).toBe('released')
    expect(await held[0]!.release()).toBe('released')
    expect(await leases.count(keys)).toBe(1)
    expect(await held[1]!.extend(60_000)).toBe(true)
    expect(held[1]!.expiresAt).toBeGreaterThan(Date.now() + 50_000)
    await held[1]!.release()
  })

  it('an acquire retried after a lost reply finds its own lease instead of waiting on it', async () => {
    const keys = keysFor()
    const id = randomUUID()
    const first = await leases.attempt(keys, 1, 30_000, id)
    const retry = await leases.attempt(keys, 1, 30_000, id)
    expect(first.grant).not.toBeNull()
    expect(retry.grant).not.toBeNull()
    expect(await leases.count(keys)).toBe(1)
    await leases.hold(keys, retry.grant!, 30_000, {}).release()
  })

  it('serves queued waiters one at a time, woken on release', async () => {
    const keys = keysFor()
    const first = leases.hold(keys, (await leases.attempt(keys, 1, 30_000, randomUUID())).grant!, 30_000, {})
    const order: number[] = []
    const waiters = [0, 1, 2].map(async (i) => {
      await new Promise((r) => setTimeout(r, i * 30))
      const grant = await leases.wait(keys, 1, 30_000, randomUUID(), {
        what: 'w',
        waitMs: 5_000 - i * 30,
        timeout,
      })
      order.push(i)
      const hold = leases.hold(keys, grant, 30_000, {})
      await new Promise((r) => setTimeout(r, 20))
      await hold.release()
    })
    await new Promise((r) => setTimeout(r, 150))
    const started = performance.now()
    await first.release()
    await Promise.all(waiters)
    // Three hand-offs of 20 ms work each, woken by pub/sub rather than by a backoff of up to 1 s.
    expect(performance.now() - started).toBeLessThan(600)
    expect(order.sort()).toEqual([0, 1, 2])
  })

  it('gives up within waitMs with the caller\u2019s error, and the watchdog reports a lost lease', async () => {
    const keys = keysFor()
    const held = leases.hold(keys, (await leases.attempt(keys, 1, 30_000, randomUUID())).grant!, 30_000, {})
    await expect(
      leases.wait(keys, 1, 30_000, randomUUID(), { what: 'w', waitMs: 100, timeout }),
    ).rejects.toBeInstanceOf(WaitTimeoutError)
    await held.release()
    const run = watchdog.using(
      async () => leases.hold(keys, (await leases.attempt(keys, 1, 300, randomUUID())).grant!, 300, {}),
      async (signal) => {
        await redis.del(keys.set)
        await new Promise((r) => signal.addEventListener('abort', r))
      },
      { lostError: (why) => new HoldLostError('r', why) },
    )
    await expect(run).rejects.toBeInstanceOf(HoldLostError)
  })
})
