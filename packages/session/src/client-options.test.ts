import { expectUnsupportedClientsRefused } from '@rp/testing/vitest'
import { it } from 'vitest'
import { SessionStore } from './store.js'

it('refuses a client with stringNumbers or keyPrefix before any command', () => {
  expectUnsupportedClientsRefused((redis) => [() => new SessionStore({ redis })])
})
