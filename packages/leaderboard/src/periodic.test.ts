import { fileURLToPath } from 'node:url'
import { runWorker } from '@rp/testing'
import { describeEachTarget, eventually, uniquePrefix } from '@rp/testing/vitest'
import { Cluster } from 'ioredis'
import { expect, inject, it } from 'vitest'
import { Leaderboard, PeriodicLeaderboard, type RankedEntry } from './index.js'

describeEachTarget('PeriodicLeaderboard', (target) => {
  const redis = target.client()

  it('writes each cycle to its own board, indexes it, and expires it keep cycles after it ends', async () => {
    let now = Date.parse('2026-12-30T10:00:00Z')
    const weekly = new PeriodicLeaderboard({
      redis,
      prefix: uniquePrefix('plb'),
      name: 'arena',
      cycle: 'weekly',
      timeZone: 'Europe/Berlin',
      // Far enough ahead that these 2026 cycles still take writes for years: a write to a cycle
      // past its keep is refused.
      keep: 1_000,
      now: () => now,
    })
    await weekly.current().submit('ana', 10)
    now = Date.parse('2027-01-05T10:00:00Z')
    await weekly.current().submit('bo', 20)
    expect(await weekly.previous().top(10)).toEqual([{ member: 'ana', score: 10, rank: 1 }])
    expect(await weekly.current().top(10)).toEqual([{ member: 'bo', score: 20, rank: 1 }])
    expect(await weekly.at(new Date('2026-12-28T00:00:00+01:00')).rank('ana')).toBe(1)
    const cycles = await weekly.cycles()
    expect(cycles.map((c) => c.key)).toEqual(['2026-W53', '2027-W01'])
    // 2026-W53 ends 2027-01-04 00:00 Berlin; kept 1,000 more weeks, its keys expire then.
    const key = (await scanKeys(redis, '*2026-W53*z')).at(0)!
    const expiresAt = Date.now() + (await redis.pttl(key))
    expect(
      Math.abs(expiresAt - (Date.parse('2027-01-04T00:00:00+01:00') + 1_000 * 7 * 86_400_000)),
    ).toBeLessThan(4 * 3_600_000)
  })

  it('refuses a write to a cycle that has already expired, and takes a custom cycle', async () => {
    const prefix = uniquePrefix('plb')
    const daily = new PeriodicLeaderboard({ redis, prefix, name: 'd', cycle: 'daily', keep: 1 })
    await expect(daily.at(new Date('2020-01-01T12:00:00Z')).submit('ana', 1)).rejects.toThrow(/^date:/)
    expect(await daily.cycles()).toEqual([])
    // A custom cycle: ten-minute rounds.
    const rounds = new PeriodicLeaderboard({
      redis,
      prefix,
      name: 'r',
      cycle: (at) => {
        const start = Math.floor(at.getTime() / 600_000) * 600_000
        return { key: `round-${start / 600_000}`, start, end: start + 600_000 }
      },
    })
    await rounds.current().submit('bo', 5)
    const [cycle] = await rounds.cycles()
    expect(cycle?.key).toMatch(/^round-\d+$/)
    expect(await rounds.current().rank('bo')).toBe(1)
    expect(
      () => new PeriodicLeaderboard({ redis, name: 'x', cycle: 'weekly', timeZone: 'Mars/Olympus' }),
    ).toThrow(/^timeZone:/)
    expect(() => new PeriodicLeaderboard({ redis, name: 'x', cycle: 'fortnightly' as never })).toThrow(
      /^cycle:/,
    )
  })

  it('exports every member exactly once while 4 processes keep submitting', async () => {
    const prefix = uniquePrefix('exp')
    const board = new Leaderboard({ redis, prefix, name: 'export', update: 'replace', ranking: 'ordinal' })
    const members = 3_000
    for (let i = 0; i < members; i += 1_000)
      await board.submitMany(Array.from({ length: 1_000 }, (_, j) => ({ member: `m${i + j}`, score: i + j })))
    const env = {
      RP_PREFIX: prefix,
      RP_MEMBERS: String(members),
      ...(target.kind === 'cluster'
        ? { RP_CLUSTER_NODES: JSON.stringify(inject('rpClusterNodes')) }
        : { RP_REDIS_URL: inject('rpRedisUrl') }),
    }
    const file = fileURLToPath(new URL('./submit.worker.ts', import.meta.url))
    const workers = Array.from({ length: 4 }, (_, worker) =>
      runWorker<{ writes: number }>(file, { ...env, RP_WORKER: String(worker) }),
    )
    // Start the export once every writer is writing.
    await eventually(
      async () => (await redis.exists(...[0, 1, 2, 3].map((w) => `${prefix}:{ready}:${w}`))) === 4,
      20_000,
    )
    await new Promise((r) => setTimeout(r, 100))
    const seen: RankedEntry[] = []
    for await (const batch of board.export({ batchSize: 100 })) {
      seen.push(...batch)
      await new Promise((r) => setTimeout(r, 20))
    }
    await redis.set(`${prefix}:stop`, '1', 'PX', 60_000)
    const writes = (await Promise.all(workers)).reduce((sum, w) => sum + w.writes, 0)
    expect(writes).toBeGreaterThan(100)
    expect(seen).toHaveLength(members)
    expect(new Set(seen.map((e) => e.member)).size).toBe(members)
    expect(seen.map((e) => e.rank)).toEqual(Array.from({ length: members }, (_, i) => i + 1))
    // The snapshot is gone once the export ends.
    expect(await scanKeys(redis, `${prefix}:*snap*`)).toEqual([])
  }, 60_000)
})

async function scanKeys(redis: ReturnType<typeof Object>, match: string): Promise<string[]> {
  const nodes = redis instanceof Cluster ? redis.nodes('master') : [redis]
  const out: string[] = []
  for (const node of nodes) {
    let cursor = '0'
    do {
      const [next, keys] = await node.scan(cursor, 'MATCH', match, 'COUNT', 1000)
      cursor = next
      out.push(...keys)
    } while (cursor !== '0')
  }
  return out
}
