import { expectUnsupportedClientsRefused } from '@rp/testing/vitest'
import { it } from 'vitest'
import { LockManager } from './lock-manager.js'
import { ReadWriteLock } from './read-write-lock.js'
import { Redlock } from './redlock.js'
import { Semaphore } from './semaphore.js'

it('refuses a client with stringNumbers or keyPrefix before any command', () => {
  expectUnsupportedClientsRefused((redis) => [
    () => new LockManager({ redis }),
    () => new Semaphore({ redis, name: 's', limit: 2 }),
    () => new ReadWriteLock({ redis, name: 'rw' }),
    () => new Redlock({ clients: [redis], force: true }),
  ])
})
