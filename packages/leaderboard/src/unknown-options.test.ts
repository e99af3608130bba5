import { expectInvalidArguments } from '@rp/testing/vitest'
import { Redis } from 'ioredis'
import { afterAll, it } from 'vitest'
import { Leaderboard } from './leaderboard.js'

const redis = new Redis({ lazyConnect: true })
afterAll(() => redis.disconnect())

it('refuses an unknown field in a submitMany entry: a submissionId there would look idempotent and not be', async () => {
  const board = new Leaderboard({ redis, prefix: 'lb', name: 'u' })
  await expectInvalidArguments([
    [
      () =>
        board.submitMany([{ member: 'a', score: 1 }, { member: 'b', score: 2, submissionId: 's' } as never]),
      /entries\[1\]\.submissionId: is not a known option/,
    ],
  ])
})
