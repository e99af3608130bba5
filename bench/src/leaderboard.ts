import { Leaderboard } from '@rp/leaderboard'
import type { Redis } from 'ioredis'
import { Leaderboard as RedisRank } from 'redis-rank'
import type { Contender, Context } from './compare.js'
import { fmt } from './compare.js'

/** Members already on the board when submit + rank runs. */
const WARM_MEMBERS = 10_000

const score = (i: number) => (i * 7_919) % 1_000_003

export function submitContenders(): Contender[] {
  const warm = async (submit: (entries: Array<{ member: string; score: number }>) => Promise<unknown>) => {
    for (let i = 0; i < WARM_MEMBERS; i += 1_000)
      await submit(Array.from({ length: 1_000 }, (_, j) => ({ member: `m${i + j}`, score: score(i + j) })))
  }
  const rp = (
    name: string,
    settings: string,
    options: Partial<ConstructorParameters<typeof Leaderboard>[0]>,
  ): Contender => ({
    name,
    library: '@rp/leaderboard',
    settings,
    async setup(redis, prefix) {
      const board = new Leaderboard({ redis, prefix, name: 'b', update: 'best', ...options })
      await warm((e) => board.submitMany(e))
      return { op: (i) => board.submit(`m${i % WARM_MEMBERS}`, score(i * 31)) }
    },
  })
  return [
    rp(
      '@rp/leaderboard (first-reached, competition)',
      "submit(member, score): update 'best', ties 'first-reached', ranking 'competition' (the defaults); the rank comes back in the same script",
      {},
    ),
    rp(
      '@rp/leaderboard (first-reached, competition, batch: false)',
      'the defaults, with batch: false: every submit its own script call',
      { batch: false },
    ),
    rp(
      '@rp/leaderboard (member ties, ordinal)',
      "submit(member, score) with update 'best', ties 'member', ranking 'ordinal': redis-rank's semantics",
      {
        ties: 'member',
        ranking: 'ordinal',
      },
    ),
    {
      name: 'redis-rank',
      library: 'redis-rank',
      settings:
        "new Leaderboard(ioredis, key, { sortPolicy: 'high-to-low', updatePolicy: 'best' }): updateOne(id, score) then rank(id)",
      async setup(redis, prefix) {
        const board = new RedisRank(redis, `${prefix}:b`, { sortPolicy: 'high-to-low', updatePolicy: 'best' })
        await warm((e) => board.update(e.map(({ member, score }) => ({ id: member, value: score }))))
        return {
          op: async (i) => {
            const id = `m${i % WARM_MEMBERS}`
            await board.updateOne(id, score(i * 31))
            return board.rank(id)
          },
        }
      },
    },
    {
      name: 'raw ioredis ZADD GT + ZREVRANK (one pipeline)',
      library: 'baseline',
      settings:
        'pipeline().zadd(key, GT, score, member).zrevrank(key, member).exec(): no tie policy, ordinal only',
      async setup(redis, prefix) {
        const key = `${prefix}:raw`
        for (let i = 0; i < WARM_MEMBERS; i += 1_000)
          await redis.zadd(
            key,
            ...Array.from({ length: 1_000 }, (_, j) => [score(i + j), `m${i + j}`]).flat(),
          )
        return {
          op: (i) => {
            const member = `m${i % WARM_MEMBERS}`
            return redis
              .pipeline()
              .zadd(key, 'GT', score(i * 31), member)
              .zrevrank(key, member)
              .exec()
          },
        }
      },
    },
  ]
}

export interface BulkRow {
  name: string
  members: number
  seconds: number
  membersPerSec: number
  bytesPerMember: number
}

/** The boards bulkLoad fills, by name: the read workloads open them again in their own processes. */
function bulkBoards(redis: Redis): { rp: Leaderboard; rpMember: Leaderboard; rank: RedisRank } {
  return {
    rp: new Leaderboard({ redis, prefix: 'bulk-rp', name: 'big' }),
    rpMember: new Leaderboard({ redis, prefix: 'bulk-rpm', name: 'big', ties: 'member', ranking: 'ordinal' }),
    rank: new RedisRank(redis, 'bulk-rank:big', { sortPolicy: 'high-to-low', updatePolicy: 'best' }),
  }
}

/**
 * Loads `members` members into a fresh board per library and times it, then reports memory per
 * member (MEMORY USAGE of every key the board wrote). Returns the loaded boards for the read
 * workloads.
 */
export async function bulkLoad(
  ctx: Context,
  redis: Redis,
  members: number,
): Promise<{ rows: BulkRow[]; rp: Leaderboard; rpMember: Leaderboard; rank: RedisRank }> {
  const { rp, rpMember, rank } = bulkBoards(redis)
  const batch = 1_000
  const entries = (i: number) =>
    Array.from({ length: batch }, (_, j) => ({ member: `player${i + j}`, score: score(i + j) }))
  const loaders: Array<[string, (i: number) => Promise<unknown>, string]> = [
    [
      '@rp/leaderboard submitMany (first-reached, competition)',
      (i) => rp.submitMany(entries(i)),
      'bulk-rp:*',
    ],
    [
      '@rp/leaderboard submitMany (member ties, ordinal)',
      (i) => rpMember.submitMany(entries(i)),
      'bulk-rpm:*',
    ],
    [
      'redis-rank update (batches of 1,000)',
      (i) => rank.update(entries(i).map((e) => ({ id: e.member, value: e.score }))),
      'bulk-rank:*',
    ],
  ]
  const rows: BulkRow[] = []
  for (const [name, load, match] of loaders) {
    const started = performance.now()
    // 8 batches in flight, as a loader would run them.
    let next = 0
    await Promise.all(
      Array.from({ length: 8 }, async () => {
        while (next < members) {
          const i = next
          next += batch
          await load(i)
        }
      }),
    )
    const seconds = (performance.now() - started) / 1_000
    let bytes = 0
    for (const key of await keysOf(ctx.admin, match))
      bytes += Number(await ctx.admin.memory('USAGE', key, 'SAMPLES', '0'))
    rows.push({ name, members, seconds, membersPerSec: members / seconds, bytesPerMember: bytes / members })
  }
  return { rows, rp, rpMember, rank }
}

async function keysOf(redis: Redis, match: string): Promise<string[]> {
  const keys: string[] = []
  let cursor = '0'
  do {
    const [next, found] = await redis.scan(cursor, 'MATCH', match, 'COUNT', 1_000)
    cursor = next
    keys.push(...found)
  } while (cursor !== '0')
  return keys
}

export function bulkTable(rows: BulkRow[]): string[] {
  return [
    '| Library | members | seconds | members/s | bytes per member |',
    '| --- | ---: | ---: | ---: | ---: |',
    ...rows.map(
      (r) =>
        `| ${r.name} | ${fmt(r.members)} | ${fmt(r.seconds, 2)} | ${fmt(r.membersPerSec)} | ${fmt(r.bytesPerMember)} |`,
    ),
    '| agoragames/leaderboard (Ruby), published figure | 10,000,000 | 942 | 10,616 | n/a |',
    '',
  ]
}

/**
 * Read workloads on the boards bulkLoad filled (found by their names): the same calls on @rp and on
 * redis-rank, each on its lane's own client.
 */
export function readContenders(members: number, op: 'top' | 'around' | 'percentile'): Contender[] {
  const member = (i: number) => `player${(i * 7_919) % members}`
  return [
    {
      name: '@rp/leaderboard (first-reached, competition)',
      library: '@rp/leaderboard',
      settings: `${op}: one script; ranks per the policy`,
      async setup(redis) {
        const board = bulkBoards(redis).rp
        const ops = {
          top: () => board.top(100),
          around: (i: number) => board.around(member(i), 10),
          percentile: (i: number) => board.percentile(member(i)),
        }
        return { op: ops[op] }
      },
    },
    {
      name: 'redis-rank',
      library: 'redis-rank',
      settings: op === 'percentile' ? 'rank(id) and count() (no percentile of its own)' : `${op}()`,
      async setup(redis) {
        const board = bulkBoards(redis).rank
        const ops = {
          top: () => board.top(100),
          around: (i: number) => board.around(member(i), 10, true),
          // redis-rank has no percentile: its rank and count, two calls.
          percentile: async (i: number) => {
            const [rank, count] = await Promise.all([board.rank(member(i)), board.count()])
            return rank === null ? null : ((count - rank + 1) / count) * 100
          },
        }
        return { op: ops[op] }
      },
    },
  ]
}
