import { UnsupportedClientError } from '@rp/core'
import { Redis } from 'ioredis'
import { afterAll, expect, it } from 'vitest'
import { DurableChannel } from './durable-channel.js'
import { PubSub } from './pubsub.js'

// Client options that would make @rp wrong without an error are refused when the instance is built,
// before any command: integers as strings (every check of a reply against a number would read "no"),
// and a keyPrefix ioredis applies to KEYS but not to SCAN patterns or ARGV. Nothing here reaches Redis.
const clients = [{ stringNumbers: true }, { keyPrefix: 'app:' }].map(
  (o) => new Redis({ lazyConnect: true, ...o }),
)
afterAll(() => {
  for (const c of clients) c.disconnect()
})

it('refuses a client with stringNumbers or keyPrefix, with UnsupportedClientError', () => {
  for (const redis of clients) {
    const builds: Array<() => unknown> = [
      () => new PubSub({ redis }),
      () => new DurableChannel({ redis, name: 'jobs' }),
    ]
    for (const build of builds) expect(build).toThrow(UnsupportedClientError)
    expect(redis.status).toBe('wait')
  }
})
