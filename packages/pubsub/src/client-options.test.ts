import { expectUnsupportedClientsRefused } from '@rp/testing/vitest'
import { it } from 'vitest'
import { DurableChannel } from './durable-channel.js'
import { PubSub } from './pubsub.js'

it('refuses a client with stringNumbers or keyPrefix before any command', () => {
  expectUnsupportedClientsRefused((redis) => [
    () => new PubSub({ redis }),
    () => new DurableChannel({ redis, name: 'jobs' }),
  ])
})
