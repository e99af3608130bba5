import { expectUnsupportedClientsRefused } from '@rp/testing/vitest'
import { it } from 'vitest'
import { Cache } from './cache.js'

it('refuses a client with stringNumbers or keyPrefix before any command', () => {
  expectUnsupportedClientsRefused((redis) => [() => new Cache({ redis, prefix: 'c', ttlMs: 1_000 })])
})
