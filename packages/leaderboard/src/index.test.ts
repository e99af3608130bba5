import { expect, it } from 'vitest'
import { defaultKeyspace } from './index.js'

it('builds cluster-safe keys in its own namespace', () => {
  expect(defaultKeyspace.key('id', 'x')).toBe('leaderboard:{id}:x')
})
