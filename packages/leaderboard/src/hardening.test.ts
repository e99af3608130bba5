import { describeEachTarget, uniquePrefix } from '@rp/testing/vitest'
import { expect, it } from 'vitest'
import { cycleOf } from './cycles.js'
import { Leaderboard, PeriodicLeaderboard } from './index.js'

describeEachTarget('Leaderboard under hostile use', (target) => {
  const redis = target.client()

  it('keeps periodic boards apart from plain boards and from other kinds of cycle of the same name', async () => {
    const prefix = uniquePrefix('h')
    const now = () => Date.parse('2026-12-30T10:00:00Z')
    const daily = new PeriodicLeaderboard({ redis, prefix, name: 'arena', cycle: 'daily', keep: 1_000, now })
    const weekly = new PeriodicLeaderboard({
      redis,
      prefix,
      name: 'arena',
      cycle: 'weekly',
      keep: 1_000,
      now,
    })
    await daily.current().submit('ana', 1)
    await weekly.current().submit('bo', 2)
    expect((await weekly.cycles()).map((c) => c.key)).toEqual(['2026-W53'])
    expect((await daily.cycles()).map((c) => c.key)).toEqual(['2026-12-30'])
    const plain = new Leaderboard({ redis, prefix, name: 'arena:2026-W53' })
    expect(await plain.count()).toBe(0)
    await plain.clear()
    expect(await weekly.current().rank('bo')).toBe(1)
  })

  it('refuses to open a board with a different order, tie policy or dense ranking than it was written with', async () => {
    const prefix = uniquePrefix('h')
    await new Leaderboard({ redis, prefix, name: 'b', ties: 'member' }).submit('a', 1)
    await expect(
      new Leaderboard({ redis, prefix, name: 'b', ties: 'first-reached' }).top(10),
    ).rejects.toThrow(/misread/)
    await expect(
      new Leaderboard({ redis, prefix, name: 'b', ties: 'member', ranking: 'dense' }).submit('c', 1),
    ).rejects.toThrow(/misread/)
    // Ordinal and competition are two views of the same data.
    expect(
      await new Leaderboard({ redis, prefix, name: 'b', ties: 'member', ranking: 'ordinal' }).rank('a'),
    ).toBe(1)
  })

  it('stores its policy on a first write that races a read, and again after clear()', async () => {
    const prefix = uniquePrefix('h')
    const desc = new Leaderboard({ redis, prefix, name: 'r' })
    // The read's check finds nothing stored; the write must still store the policy.
    await Promise.all([desc.top(1), desc.submit('a', 1)])
    await expect(new Leaderboard({ redis, prefix, name: 'r', order: 'asc' }).submit('z', 1)).rejects.toThrow(
      /misread/,
    )
    await desc.clear()
    // An ascending board now owns the name; the descending instance must not write into it.
    await new Leaderboard({ redis, prefix, name: 'r', order: 'asc' }).submit('b', 2)
    await expect(desc.submit('c', 3)).rejects.toThrow(/misread/)
  })

  it('runs calls in the order they were made', async () => {
    const lb = new Leaderboard({ redis, prefix: uniquePrefix('h'), name: 'o' })
    await lb.submit('warm', 1)
    const [, removed] = await Promise.all([lb.submit('q', 5), lb.remove('q')])
    expect(removed).toBe(true)
    expect(await lb.entry('q')).toBeNull()
    const [, top] = await Promise.all([lb.submit('q2', 50), lb.top(1)])
    expect(top[0]?.member).toBe('q2')
  })

  it('leaves the board intact when the reach sequence is exhausted', async () => {
    const prefix = uniquePrefix('h')
    const lb = new Leaderboard({ redis, prefix, name: 'x', ranking: 'dense' })
    await lb.submitMany([
      { member: 'a', score: 1 },
      { member: 'b', score: 1 },
    ])
    await redis.set(`${prefix}:{x}:q`, '99999999999998')
    await expect(lb.submit('a', 2)).rejects.toThrow(/exhausted/)
    expect(await lb.count()).toBe(2)
    expect(await lb.entry('a')).toMatchObject({ score: 1, rank: 1 })
  })

  it('refuses lone surrogates, internal options and pages past what Redis can address', async () => {
    const lb = new Leaderboard({ redis, prefix: uniquePrefix('h'), name: 'y' })
    await expect(lb.submit('\uD800', 1)).rejects.toThrow(/^member:.*surrogate/)
    expect(() => new Leaderboard({ redis, name: 'y', expireAt: 1 } as never)).toThrow(
      /^expireAt: is not a known option/,
    )
    expect(() => new Leaderboard({ redis, name: 'y', onFirstWrite: 42 } as never)).toThrow(/^onFirstWrite:/)
    await expect(lb.page(1e13, { pageSize: 10_000 })).rejects.toThrow(/^page:/)
    const bad = new PeriodicLeaderboard({ redis, name: 'z', cycle: 'daily', now: () => Number.NaN })
    expect(() => bad.current()).toThrow(/^now:/)
    expect(() => bad.at(undefined as never)).toThrow(/^date:/)
  })

  it('refuses what it cannot store or name faithfully, with InvalidArgumentError, never a raw error', async () => {
    const lb = new Leaderboard({ redis, prefix: uniquePrefix('h'), name: 'y' })
    // Two ids that UTF-8 would both turn into 'x\uFFFD': one submission, the other dropped.
    await expect(lb.submit('s1', 1, { submissionId: 'x\uD800' })).rejects.toThrow(/^submissionId:/)
    await expect(lb.submit('s2', 2, { submissionId: 'x\uDFFF' })).rejects.toThrow(/^submissionId:/)
    for (const score of [Object.create(null), 10n, Symbol('s')])
      await expect(lb.submit('m', score as never)).rejects.toMatchObject({ name: 'InvalidArgumentError' })
    const periodic = new PeriodicLeaderboard({ redis, prefix: uniquePrefix('h'), name: 'p', cycle: 'daily' })
    for (const at of [
      1e20,
      8.64e15,
      -1,
      Object.create(null),
      new Proxy(new Date(), {}),
      new Date(Number.NaN),
    ]) {
      expect(() => periodic.at(at as never)).toThrow(/^date:/)
      expect(() => periodic.window(at as never)).toThrow(/^date:/)
    }
    const future = new PeriodicLeaderboard({ redis, name: 'f', cycle: 'daily', now: () => 1e20 })
    expect(() => future.current()).toThrow(/^now:/)
    for (const cycle of [Symbol('c'), 10n])
      expect(() => new PeriodicLeaderboard({ redis, name: 'c', cycle: cycle as never })).toThrow(/^cycle:/)
    expect(
      () => new PeriodicLeaderboard({ redis, name: 'c', cycle: 'daily', timeZone: 10n as never }),
    ).toThrow(/^timeZone:/)
  })

  it('a retried submissionId whose member left the board answers score null, not a made-up one', async () => {
    const lb = new Leaderboard({ redis, prefix: uniquePrefix('h'), name: 'w', update: 'increment' })
    await lb.submit('m', 7, { submissionId: 'y' })
    await lb.remove('m')
    expect(await lb.submit('m', 7, { submissionId: 'y' })).toEqual({
      score: null,
      rank: null,
      changed: false,
    })
  })
})

it('cycle windows contain their instant in zones whose clocks move by 30 minutes or 2 hours', () => {
  for (const [zone, iso, cycle] of [
    ['Australia/Lord_Howe', '2026-04-04T14:30:00Z', 'minute'],
    ['Australia/Lord_Howe', '2026-04-04T15:15:00Z', 'hourly'],
    ['Antarctica/Troll', '2025-10-25T23:00:00Z', 'hourly'],
    ['Antarctica/Troll', '2025-10-26T00:30:00Z', 'daily'],
  ] as const) {
    const at = Date.parse(iso)
    const w = cycleOf(cycle, zone, at)
    expect(w.start <= at && at < w.end, `${zone} ${iso} ${cycle}: ${JSON.stringify(w)}`).toBe(true)
  }
})
