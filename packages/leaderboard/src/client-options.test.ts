import { expectUnsupportedClientsRefused } from '@rp/testing/vitest'
import { it } from 'vitest'
import { Leaderboard } from './leaderboard.js'

it('refuses a client with stringNumbers or keyPrefix before any command', () => {
  expectUnsupportedClientsRefused((redis) => [() => new Leaderboard({ redis, prefix: 'lb', name: 'u' })])
})
