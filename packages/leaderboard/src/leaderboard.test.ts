import { describeEachTarget, expectInvalidArguments, uniquePrefix } from '@rp/testing/vitest'
import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import { Leaderboard, type RankedEntry } from './index.js'
import type { Order, Ranking, TiePolicy, UpdatePolicy } from './options.js'

/** The reference: an in-memory leaderboard with the same policies, ranked the slow, obvious way. */
class Model {
  readonly entries = new Map<string, { score: number; seq: number }>()
  #seq = 0
  constructor(
    readonly order: Order,
    readonly update: UpdatePolicy,
    readonly ties: TiePolicy,
    readonly ranking: Ranking,
    readonly maxMembers: number | undefined,
  ) {}

  submit(member: string, score: number, update = this.update, trim = true): void {
    const old = this.entries.get(member)
    let next = score
    if (old && update === 'increment') next = old.score + score
    const changed = !old || (update === 'best' ? this.#better(score, old.score) : next !== old.score)
    if (changed) this.entries.set(member, { score: next, seq: ++this.#seq })
    if (trim) this.trim()
  }

  trim(): void {
    if (this.maxMembers !== undefined) {
      const ordered = this.ordered()
      for (const e of ordered.slice(this.maxMembers)) this.entries.delete(e.member)
    }
  }

  #better(a: number, b: number): boolean {
    return this.order === 'desc' ? a > b : a < b
  }

  ordered(): RankedEntry[] {
    const list = [...this.entries].map(([member, e]) => ({ member, ...e }))
    const desc = this.order === 'desc'
    list.sort((a, b) => {
      if (a.score !== b.score) return desc ? b.score - a.score : a.score - b.score
      if (this.ties === 'first-reached') return a.seq - b.seq
      const c = Buffer.compare(Buffer.from(a.member), Buffer.from(b.member))
      return desc ? -c : c
    })
    let rank = 0
    let prev: number | null = null
    return list.map((e, i) => {
      if (this.ranking === 'ordinal') rank = i + 1
      else if (e.score !== prev) rank = this.ranking === 'competition' ? i + 1 : rank + 1
      prev = e.score
      return { member: e.member, score: e.score, rank }
    })
  }
}

const policies = fc.record({
  order: fc.constantFrom<Order>('desc', 'asc'),
  update: fc.constantFrom<UpdatePolicy>('replace', 'best', 'increment'),
  ties: fc.constantFrom<TiePolicy>('first-reached', 'member'),
  ranking: fc.constantFrom<Ranking>('ordinal', 'dense', 'competition'),
  maxMembers: fc.option(fc.integer({ min: 2, max: 6 }), { nil: undefined }),
})
const member = fc.constantFrom('ana', 'bo', 'cy', 'dee', 'Émile', 'zoë', 'a b', '{x}', '*')
const op = fc.oneof(
  fc.record({ kind: fc.constant('submit' as const), member, score: fc.integer({ min: -3, max: 3 }) }),
  fc.record({ kind: fc.constant('increment' as const), member, score: fc.integer({ min: -2, max: 2 }) }),
  fc.record({ kind: fc.constant('remove' as const), member }),
  fc.record({
    kind: fc.constant('many' as const),
    entries: fc.array(fc.record({ member, score: fc.integer({ min: -3, max: 3 }) }), { maxLength: 6 }),
  }),
)

describeEachTarget('Leaderboard', (target) => {
  const redis = target.client()
  const board = (options: Partial<ConstructorParameters<typeof Leaderboard>[0]> = {}) =>
    new Leaderboard({ redis, prefix: uniquePrefix('lb'), name: 'arena', ...options })

  it('answers every call of a tick as it would alone when the batch mixes boards of every policy', async () => {
    // The scripts share their functions per batch and bind each call's keys and policy first: a
    // call must never see the board or policy of the call before it.
    const combos = (['desc', 'asc'] as const).flatMap((order) =>
      (['first-reached', 'member'] as const).flatMap((ties) =>
        (['ordinal', 'dense', 'competition'] as const).map((ranking) => ({ order, ties, ranking })),
      ),
    )
    const scores: Array<[string, number]> = [
      ['ana', 5],
      ['bo', 3],
      ['cy', 5],
      ['dee', 1],
      ['eve', 3],
    ]
    const mixed = combos.map((p) => board(p))
    const alone = combos.map((p) => board(p))
    const results = await Promise.all(mixed.flatMap((b) => scores.map(([m, sc]) => b.submit(m, sc))))
    const expected = []
    for (const b of alone) for (const [m, sc] of scores) expected.push(await b.submit(m, sc))
    expect(results).toEqual(expected)
    const read = (b: Leaderboard) =>
      Promise.all([
        b.top(10),
        ...scores.map(([m]) => b.entry(m)),
        b.around('cy', 1),
        b.among(['dee', 'ana', 'nobody']),
        b.increment('bo', 1),
      ])
    const mixedReads = await Promise.all(mixed.map(read))
    const aloneReads = []
    for (const b of alone) aloneReads.push(await read(b))
    expect(mixedReads).toEqual(aloneReads)
    // The boards differ by policy, so a call that read another's would have shown here.
    expect(new Set(aloneReads.map((r) => JSON.stringify(r[0]))).size).toBeGreaterThan(2)
  })

  it('matches an in-memory reference under every combination of policies (model test)', async () => {
    await fc.assert(
      fc.asyncProperty(policies, fc.array(op, { maxLength: 25 }), async (p, ops) => {
        const lb = board(p)
        const model = new Model(p.order, p.update, p.ties, p.ranking, p.maxMembers)
        for (const o of ops) {
          if (o.kind === 'submit') {
            const r = await lb.submit(o.member, o.score)
            model.submit(o.member, o.score)
            const expected = model.ordered().find((e) => e.member === o.member)
            expect(r.rank).toBe(expected?.rank ?? null)
            if (expected) expect(r.score).toBe(expected.score)
          } else if (o.kind === 'increment') {
            const r = await lb.increment(o.member, o.score)
            model.submit(o.member, o.score, 'increment')
            expect(r.rank).toBe(model.ordered().find((e) => e.member === o.member)?.rank ?? null)
          } else if (o.kind === 'many') {
            // Applied in order, repeats of one member included, as that many submits would be;
            // maxMembers trims once, after the batch.
            await lb.submitMany(o.entries)
            for (const e of o.entries) model.submit(e.member, e.score, model.update, false)
            model.trim()
          } else {
            expect(await lb.remove(o.member)).toBe(model.entries.delete(o.member))
          }
        }
        const expected = model.ordered()
        expect(await lb.top(100)).toEqual(expected)
        expect(await lb.top(0)).toEqual([])
        expect(await lb.top(0, { offset: 1 })).toEqual([])
        expect(await lb.count()).toBe(expected.length)
        for (const [i, e] of expected.entries()) {
          const atOrBelow =
            p.ranking === 'ordinal' ? expected.length - i : expected.filter((x) => x.rank >= e.rank).length
          expect(await lb.entry(e.member)).toEqual({ ...e, percentile: (atOrBelow / expected.length) * 100 })
          // around: 2 above and 2 below, shifted at the edges.
          const lo = Math.max(0, Math.min(i - 2, expected.length - 5))
          expect(await lb.around(e.member, 2)).toEqual(expected.slice(lo, lo + 5))
          expect(await lb.around(e.member, 2, { fillBorders: false })).toEqual(
            expected.slice(Math.max(0, i - 2), i + 3),
          )
          expect(await lb.pageOf(e.member, { pageSize: 2 })).toBe(Math.floor(i / 2) + 1)
        }
        if (expected.length > 1) {
          expect(await lb.top(2, { offset: 1 })).toEqual(expected.slice(1, 3))
          const friends = [expected[expected.length - 1]!.member, expected[0]!.member, 'nobody']
          const among = await lb.among(friends)
          expect(among.map((e) => e.member)).toEqual([
            expected[0]!.member,
            expected[expected.length - 1]!.member,
          ])
          expect(among[0]).toMatchObject({ rank: 1, globalRank: expected[0]!.rank })
        }
        let exported: RankedEntry[] = []
        for await (const batch of lb.export({ batchSize: 3 })) exported = exported.concat(batch)
        expect(exported).toEqual(expected)
      }),
      { numRuns: 80 },
    )
  }, 120_000)

  describe('ties', () => {
    it('competition ranks 1, 2, 2, 4 and dense ranks 1, 2, 2, 3', async () => {
      for (const [ranking, ranks] of [
        ['competition', [1, 2, 2, 4]],
        ['dense', [1, 2, 2, 3]],
        ['ordinal', [1, 2, 3, 4]],
      ] as const) {
        const lb = board({ ranking, update: 'replace' })
        await lb.submitMany([
          { member: 'a', score: 100 },
          { member: 'b', score: 90 },
          { member: 'c', score: 90 },
          { member: 'd', score: 80 },
        ])
        expect((await lb.top(4)).map((e) => e.rank)).toEqual(ranks)
      }
    })

    it('first-reached: of two equal scores, the one reached first ranks higher, 1 ms apart or less', async () => {
      for (const order of ['desc', 'asc'] as const) {
        const lb = board({ order, ranking: 'ordinal', update: 'replace' })
        await lb.submit('zed', 50)
        await lb.submit('amy', 50)
        expect((await lb.top(2)).map((e) => e.member)).toEqual(['zed', 'amy'])
        // Reaching it again later moves amy behind nobody; a changed score is a new reach.
        await lb.submit('zed', 49)
        await lb.submit('zed', 50)
        expect((await lb.top(2)).map((e) => e.member)).toEqual(['amy', 'zed'])
      }
    })

    it('reads back the exact score it was given, fractions and the extremes of the safe range included', async () => {
      const lb = board({ update: 'replace' })
      for (const score of [
        0.1,
        -0.30000000000000004,
        Number.MAX_SAFE_INTEGER,
        -Number.MAX_SAFE_INTEGER,
        1e-300,
      ]) {
        await lb.submit('m', score)
        expect(await lb.score('m')).toBe(score)
      }
    })
  })

  it('best keeps the better score; increment rejects leaving the safe range', async () => {
    const best = board({ update: 'best', order: 'asc' })
    await best.submit('runner', 61.5)
    expect(await best.submit('runner', 70)).toMatchObject({ score: 61.5, changed: false })
    expect(await best.submit('runner', 59.25)).toMatchObject({ score: 59.25, changed: true, rank: 1 })
    const inc = board({ update: 'increment' })
    await inc.submit('m', Number.MAX_SAFE_INTEGER)
    await expect(inc.increment('m', 1)).rejects.toMatchObject({ code: 'RP_INVALID_ARGUMENT', argument: 'by' })
    expect(await inc.score('m')).toBe(Number.MAX_SAFE_INTEGER)
  })

  it('a retried submissionId is a no-op', async () => {
    const lb = board({ update: 'increment' })
    expect(await lb.submit('ana', 10, { submissionId: 's1' })).toMatchObject({ score: 10, changed: true })
    expect(await lb.submit('ana', 10, { submissionId: 's1' })).toMatchObject({
      score: 10,
      changed: false,
      rank: 1,
    })
    expect(await lb.submit('ana', 10, { submissionId: 's2' })).toMatchObject({ score: 20, changed: true })
  })

  it('a submit refused for its range does not use up its submissionId', async () => {
    const lb = board({ update: 'increment' })
    await lb.submit('m', Number.MAX_SAFE_INTEGER)
    await expect(lb.submit('m', 1, { submissionId: 'retry-me' })).rejects.toMatchObject({ argument: 'score' })
    expect(await lb.submit('m', -1, { submissionId: 'retry-me' })).toMatchObject({ changed: true })
    await expect(
      lb.submitMany([
        { member: 'a', score: 1 },
        { member: 'm', score: 10 },
      ]),
    ).rejects.toThrow(/^entries\[1\]/)
  })

  it('keeps every key of a plain board without a TTL on purpose, and every submission id with one', async () => {
    const prefix = uniquePrefix('ttl')
    const lb = new Leaderboard({ redis, prefix, name: 'ttl', ranking: 'dense' })
    await lb.submit('a', 1, { submissionId: 's' })
    const sub = `${prefix}:{ttl}:sub`
    expect(await redis.pttl(sub)).toBeGreaterThan(0)
    expect(await redis.pttl(`${prefix}:{ttl}:z`)).toBe(-1)
  })

  it('trims the worst members past maxMembers in the same call', async () => {
    const lb = board({ maxMembers: 3, update: 'replace' })
    for (const [m, s] of [
      ['a', 1],
      ['b', 2],
      ['c', 3],
      ['d', 4],
    ] as const)
      await lb.submit(m, s)
    expect((await lb.top(10)).map((e) => e.member)).toEqual(['d', 'c', 'b'])
    expect(await lb.submit('e', 0)).toMatchObject({ rank: null })
  })

  it('rejects bad input before any I/O, naming the argument', async () => {
    const lb = board()
    await expectInvalidArguments([
      [() => lb.submit('m', Number.NaN), /^score:/],
      [() => lb.submit('m', Number.POSITIVE_INFINITY), /^score:/],
      [() => lb.submit('m', 2 ** 60), /^score:/],
      [() => lb.submit('m', '5' as never), /^score:/],
      [() => lb.submit('', 1), /^member:/],
      [() => lb.submit('é'.repeat(300), 1), /^member:/],
      [() => lb.top(-1), /^count:/],
      [() => lb.top(1.5), /^count:/],
      [() => lb.top(10_001), /^count:/],
      [() => lb.top(10, { offset: -1 }), /^offset:/],
      [() => lb.page(1, { pageSize: 0 }), /^pageSize:/],
      [() => lb.page(0), /^page:/],
      [() => lb.around('m', 5_000), /^n:/],
      [() => lb.submit('m', 1, { submissionID: 'x' } as never), /^submissionID:/],
      [async () => new Leaderboard({ redis, name: 'b', batch: 'x' as never }), /^batch:/],
      [() => lb.submitMany([{ member: 'm', score: Number.NaN }]), /^entries\[0\]\.score:/],
      [() => lb.among(['']), /^members\[0\]:/],
    ])
    expect(() => board({ ties: 'first' as never })).toThrow(/^ties:/)
    expect(() => board({ cycle: 'weekly' } as never)).toThrow(/^cycle: is not a known option/)
  })
})
