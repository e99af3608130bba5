import { expectInvalidArguments } from '@rp/testing/vitest'
import { Redis } from 'ioredis'
import { afterAll, expect, it } from 'vitest'
import { LockManager } from './lock-manager.js'
import { ReadWriteLock } from './read-write-lock.js'
import { Redlock } from './redlock.js'
import { Semaphore } from './semaphore.js'

// A misspelt option must be refused, not silently replaced by its default. Nothing here reaches Redis.
const redis = new Redis({ lazyConnect: true })
const three = [redis, new Redis({ lazyConnect: true }), new Redis({ lazyConnect: true })]
afterAll(() => {
  for (const client of three) client.disconnect()
})

it('refuses a misspelt constructor option, naming it', () => {
  const cases: Array<[() => unknown, RegExp]> = [
    [() => new LockManager({ redis, ttlMS: 5_000 } as never), /ttlMS: is not a known option/],
    [
      () => new Semaphore({ redis, name: 's', limit: 2, maxPermits: 3 } as never),
      /maxPermits: is not a known option/,
    ],
    [() => new ReadWriteLock({ redis, name: 'rw', ttl: 5 } as never), /ttl: is not a known option/],
    [() => new Redlock({ clients: three, retryCount: 3 } as never), /retryCount: is not a known option/],
    [() => new Redlock(three, { drift: 0.1 } as never), /drift: is not a known option/],
  ]
  for (const [make, message] of cases) expect(make).toThrow(message)
})

it('rejects a misspelt call option, naming it', async () => {
  const locks = new LockManager({ redis })
  const semaphore = new Semaphore({ redis, name: 's', limit: 2 })
  const rw = new ReadWriteLock({ redis, name: 'rw' })
  const redlock = new Redlock({ clients: three })
  await expectInvalidArguments([
    [() => locks.acquire('r', { ttl: 5 } as never), /ttl: is not a known option/],
    // A try does not wait: a waitMs there would be silently meaningless.
    [() => locks.tryAcquire('r', { waitMs: 5 } as never), /waitMs: is not a known option/],
    [() => semaphore.acquire({ timeoutMs: 5 } as never), /timeoutMs: is not a known option/],
    [() => rw.read({ wait: 5 } as never), /wait: is not a known option/],
    [() => redlock.acquire('r', { ttlMs: 1_000, retries: 2 } as never), /retries: is not a known option/],
  ])
})
