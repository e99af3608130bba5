import {
  InvalidArgumentError,
  instrument,
  keyspace,
  promised,
  RedisGuard,
  RpError,
  requireArray,
  requireBoolean,
  requireIntegerInRange,
  requireKnownOptions,
  requireOptions,
  requirePositiveInteger,
  requireWellFormedString,
  type Script,
  type ScriptArg,
  toRpError,
} from '@rp/core/kit'
import { nanoid } from 'nanoid'
import {
  type LeaderboardOptions,
  MAX_BATCH,
  type ResolvedLeaderboardOptions,
  requireCount,
  requireMember,
  requireScore,
  resolveLeaderboardOptions,
} from './options.js'
import {
  amongScript,
  aroundScript,
  entryScript,
  pageScript,
  removeScript,
  snapshotScript,
  submitManyScript,
  submitScript,
} from './scripts.js'

export interface RankedEntry {
  readonly member: string
  readonly score: number
  /** 1-based, per the board's ranking policy. */
  readonly rank: number
}

export interface LeaderboardEntry extends RankedEntry {
  /** 0–100: the share of members ranked at or below this one; the best is 100. */
  readonly percentile: number
}

export interface SubmitResult {
  /**
   * The member's score after the submit (the better one, under `update: 'best'`); null only for a
   * retried submissionId whose member has left the board since.
   */
  readonly score: number | null
  /** Its rank after the submit; null if maxMembers trimmed it off the board. */
  readonly rank: number | null
  /** Whether the stored score changed (false for a retried submissionId, too). */
  readonly changed: boolean
}

export interface IncrementResult {
  readonly score: number
  readonly rank: number | null
}

export interface AmongEntry extends RankedEntry {
  /** The member's rank on the whole board. */
  readonly globalRank: number
}

const PKG = 'leaderboard'
const WRITES = new Set(['submit', 'increment', 'submitMany'])

/** What PeriodicLeaderboard hands the next board it builds; never a user option. */
interface CycleBoard {
  expireAt: number
  onFirstWrite: () => Promise<void>
}
let nextCycleBoard: CycleBoard | null = null

/** @internal Builds a cycle's board for PeriodicLeaderboard. */
export function cycleBoard(options: LeaderboardOptions, internal: CycleBoard): Leaderboard {
  nextCycleBoard = internal
  try {
    return new Leaderboard(options)
  } finally {
    nextCycleBoard = null
  }
}

/**
 * A leaderboard on one sorted set: exact ranks under a tie and ranking policy, computed in the
 * script that reads or writes the score, so every call is one round trip.
 */
/** Deepest offset page() reads: a position Redis takes as an integer. */
const MAX_PAGE_OFFSET = 2 ** 31 - 1

export class Leaderboard {
  readonly #o: ResolvedLeaderboardOptions
  readonly #guard: RedisGuard
  readonly #keys: string[]
  readonly #policy: [string, string, string]
  readonly #snapshot: (id: string) => string
  /** Expiry of every key, for periodic boards (set by PeriodicLeaderboard, never by an option). */
  readonly #expireAt: number | null
  /** Runs once before the first write: a periodic board registers its cycle. */
  #beforeWrite: (() => Promise<void>) | null
  #registered: Promise<void> | null = null
  readonly #policyKey: string
  /** Set once this instance has seen the board's stored policy agree with its own. */
  #policyChecked: Promise<void> | null = null
  /** Whether the pending (or passed) check stored the policy, as a write's must. */
  #policyCheckWrites = false
  /** The policy was checked against the board: calls go straight to the script. */
  #policyOk = false

  /** @throws InvalidArgumentError for a bad or unknown option. */
  constructor(options: LeaderboardOptions) {
    this.#o = resolveLeaderboardOptions(options)
    const internal = nextCycleBoard
    nextCycleBoard = null
    this.#expireAt = internal?.expireAt ?? null
    this.#beforeWrite = internal?.onFirstWrite ?? null
    const ks = keyspace(this.#o.prefix)
    const name = this.#o.name
    this.#keys = ['z', 'r', 'q', 'd', 'dc', 'sub'].map((part) => ks.key(name, part))
    this.#policyKey = ks.key(name, 'p')
    this.#snapshot = (id) => ks.key(name, 'snap', id)
    this.#policy = [this.#o.order, this.#o.ties, this.#o.ranking]
    this.#guard = new RedisGuard(this.#o.redis, this.#o.timeoutMs, { batch: this.#o.batch })
  }

  /**
   * A board's order, ties and dense ranking shape what is stored (reach prefixes, the dense index),
   * so opening a board with other ones would misread it. The first write stores them (SET NX); every
   * instance checks them once before its first call.
   */
  #checkPolicy(write: boolean): Promise<void> | null {
    // Checked: no await at all, so calls reach the batch in the order they were made.
    if (this.#policyOk) return null
    // A read's check proves nothing for a write: it must store the policy (SET NX) itself.
    if (this.#policyChecked && (this.#policyCheckWrites || !write)) return this.#policyChecked
    // Ordinal and competition ranks are read-time views of the same data; dense keeps an index.
    const [order, ties, ranking] = this.#policy
    const policy = `${order},${ties},${ranking === 'dense' ? 'dense' : 'plain'}`
    const { redis } = this.#o
    const check: Promise<void> = this.#guard
      .run('policy', () =>
        write
          ? this.#expireAt === null
            ? redis.set(this.#policyKey, policy, 'NX', 'GET')
            : redis.set(this.#policyKey, policy, 'PXAT', this.#expireAt, 'NX', 'GET')
          : redis.get(this.#policyKey),
      )
      .then((stored) => {
        if (stored !== null && stored !== policy) {
          throw new InvalidArgumentError(
            'options',
            `board ${JSON.stringify(this.#o.name)} was created as ${stored} (order, ties, dense index or not), this instance is ${policy}: its data would be misread`,
          )
        }
        // A read of a board nobody has written yet proves nothing: check again next time.
        if (this.#policyChecked !== guarded) return
        if (write || stored !== null) this.#policyOk = true
        else this.#policyChecked = null
      })
    const guarded = check.catch((error: unknown) => {
      if (this.#policyChecked === guarded) this.#policyChecked = null
      throw error
    })
    this.#policyChecked = guarded
    this.#policyCheckWrites = write
    return guarded
  }

  /** The board's resolved policy. */
  get options(): Omit<ResolvedLeaderboardOptions, 'redis'> {
    const { redis: _, ...rest } = this.#o
    return rest
  }

  /** The first write of a periodic board registers its cycle; a failed registration is retried. */
  #ready(): Promise<void> | null {
    if (!this.#beforeWrite) return null
    this.#registered ??= this.#beforeWrite().then(
      () => {
        this.#beforeWrite = null
      },
      (error: unknown) => {
        this.#registered = null
        throw error
      },
    )
    return this.#registered
  }

  async #run<T>(
    operation: string,
    script: Script<T>,
    args: readonly ScriptArg[],
    keys = this.#keys,
  ): Promise<T> {
    const checking = this.#checkPolicy(WRITES.has(operation))
    if (checking) await checking
    return instrument({ package: PKG, operation }, () =>
      this.#guard.script(operation, script, keys, [...this.#policy, ...args]),
    )
  }

  /**
   * Submits a score under the board's update policy, in one round trip, and answers the score and
   * rank after it. With a submissionId, a retry of the same submission is a no-op.
   */
  submit(member: string, score: number, options?: { submissionId?: string }): Promise<SubmitResult> {
    return promised(async () => {
      requireMember('member', member)
      requireScore('score', score)
      const opts = requireOptions('options', options)
      requireKnownOptions('options', opts, ['submissionId'])
      const sid =
        opts.submissionId === undefined
          ? ''
          : // Sent to Redis as it is: a lone surrogate would reach it as U+FFFD, another id.
            requireWellFormedString('submissionId', opts.submissionId)
      if (sid.length > 256) throw new InvalidArgumentError('submissionId', 'must be at most 256 characters')
      return this.#submit('submit', member, score, this.#o.update, sid)
    })
  }

  /** Adds `by` to the member's score (from 0), whatever the board's update policy. */
  increment(member: string, by: number): Promise<IncrementResult> {
    return promised(async () => {
      requireMember('member', member)
      requireScore('by', by)
      const { score, rank } = await this.#submit('increment', member, by, 'increment', '')
      return { score: score as number, rank }
    })
  }

  async #submit(
    operation: string,
    member: string,
    score: number,
    update: string,
    sid: string,
  ): Promise<SubmitResult> {
    // Awaited only when there is something to wait for: one more await than the other calls made
    // a submit reach the batch after a remove or a top called after it.
    const ready = this.#ready()
    if (ready) await ready
    const reply = await this.#run(operation, submitScript, [
      member,
      score,
      update,
      sid,
      this.#o.submissionTtlMs,
      this.#o.maxMembers ?? '',
      this.#expireAt ?? '',
    ])
    if (reply[0] === 'expired') throw expiredCycle()
    if (reply[0] === 'range')
      throw new InvalidArgumentError(
        operation === 'increment' ? 'by' : 'score',
        `the result ${reply[1]} would leave ±${Number.MAX_SAFE_INTEGER}, where scores stay exact`,
      )
    const rank = reply[2] === null ? null : Number(reply[2])
    if (reply[0] === 'dup')
      return { score: reply[1] === null ? null : Number(reply[1]), rank, changed: false }
    return { score: Number(reply[1]), rank, changed: reply[3] === 1 }
  }

  /**
   * Many submits under the update policy, applied in order (repeats of a member included), in
   * batches of 1,000: each batch one round trip. maxMembers trims once per batch, after it.
   * Resolves to how many submits changed a score.
   */
  submitMany(entries: ReadonlyArray<{ member: string; score: number }>): Promise<number> {
    return promised(async () => {
      const list = requireArray<{ member: string; score: number }>('entries', entries)
      const args: Array<string | number> = []
      for (const [i, e] of list.entries()) {
        if (typeof e !== 'object' || e === null)
          throw new InvalidArgumentError(`entries[${i}]`, 'must be { member, score }')
        // No submissionId here: a bulk load is not idempotent per entry, and must not look as if it were.
        requireKnownOptions(`entries[${i}]`, e, ['member', 'score'])
        const member = requireMember(`entries[${i}].member`, e.member)
        args.push(requireScore(`entries[${i}].score`, e.score), member)
      }
      let changed = 0
      if (args.length) await this.#ready()
      const o = this.#o
      if (
        o.ties === 'member' &&
        o.ranking !== 'dense' &&
        o.update !== 'increment' &&
        o.maxMembers === null &&
        this.#expireAt === null
      ) {
        // Nothing to keep but the sorted set, nothing to trim or expire: one plain ZADD per batch
        // (GT/LT for best) applies repeated members in order, as submits would, and skips the
        // copy of every argument into Lua and back (a third of a bulk load's time).
        await this.#checkPolicy(true)
        const z = this.#keys[0]!
        const flags = o.update === 'best' ? [o.order === 'desc' ? 'GT' : 'LT', 'CH'] : ['CH']
        for (let i = 0; i < args.length; i += 2 * 1_000) {
          const batch = args.slice(i, i + 2 * 1_000)
          changed += await instrument({ package: PKG, operation: 'submitMany' }, () =>
            this.#guard.run('submitMany', () => o.redis.zadd(z, ...flags, ...batch) as Promise<number>),
          )
        }
        return changed
      }
      for (let i = 0; i < args.length; i += 2 * 1_000) {
        const reply = await this.#run('submitMany', submitManyScript, [
          this.#o.update,
          this.#o.maxMembers ?? '',
          this.#expireAt ?? '',
          ...args.slice(i, i + 2 * 1_000),
        ])
        if (Array.isArray(reply) && reply[0] === 'expired') throw expiredCycle()
        if (Array.isArray(reply))
          throw new InvalidArgumentError(
            `entries[${i / 2 + Number(reply[1])}]`,
            `its increment would take the score past ±${Number.MAX_SAFE_INTEGER}; nothing in this batch was written`,
          )
        changed += reply
      }
      return changed
    })
  }

  /** The first `count` entries (from `offset`), best first. */
  top(count: number, options?: { offset?: number }): Promise<RankedEntry[]> {
    return promised(async () => {
      requireCount('count', count)
      const opts = requireOptions('options', options)
      requireKnownOptions('options', opts, ['offset'])
      const offset = opts.offset === undefined ? 0 : requireCount('offset', opts.offset)
      if (count === 0) return []
      if (offset > 0) return this.#entries(await this.#run('top', pageScript, [offset, count]))
      // From the top, the first entry ranks 1 under every policy and the rest follow from the
      // scores: one plain range read, no script.
      await this.#checkPolicy(false)
      const { redis } = this.#o
      const z = this.#keys[0]!
      const raw = await instrument({ package: PKG, operation: 'top' }, () =>
        this.#guard.run('top', () =>
          this.#o.order === 'desc'
            ? redis.zrevrange(z, 0, count - 1, 'WITHSCORES')
            : redis.zrange(z, 0, count - 1, 'WITHSCORES'),
        ),
      )
      return this.#entries(raw, 0, 0, 1)
    })
  }

  /** Page `page` (1-based) of `pageSize` entries (default 50). */
  page(page: number, options?: { pageSize?: number }): Promise<RankedEntry[]> {
    return promised(async () => {
      requirePositiveInteger('page', page)
      const size = this.#pageSize(options)
      const offset = (page - 1) * size
      if (offset > MAX_PAGE_OFFSET)
        throw new InvalidArgumentError(
          'page',
          `reaches past entry ${MAX_PAGE_OFFSET}; export() walks a whole board`,
        )
      return this.#entries(await this.#run('page', pageScript, [offset, size]))
    })
  }

  /** The page (1-based) the member is on, by position, or null when not on the board. */
  pageOf(member: string, options?: { pageSize?: number }): Promise<number | null> {
    return promised(async () => {
      requireMember('member', member)
      const size = this.#pageSize(options)
      const around = await this.#run('pageOf', aroundScript, [member, 0, '0'])
      return around === null ? null : Math.floor(Number(around[0]) / size) + 1
    })
  }

  #pageSize(options: { pageSize?: number } | undefined): number {
    const opts = requireOptions('options', options)
    requireKnownOptions('options', opts, ['pageSize'])
    return opts.pageSize === undefined ? 50 : requireCount('pageSize', opts.pageSize, 1)
  }

  async rank(member: string): Promise<number | null> {
    return (await this.entry(member))?.rank ?? null
  }

  async score(member: string): Promise<number | null> {
    return (await this.entry(member))?.score ?? null
  }

  async percentile(member: string): Promise<number | null> {
    return (await this.entry(member))?.percentile ?? null
  }

  /** Score, rank and percentile in one round trip; null when the member is not on the board. */
  entry(member: string): Promise<LeaderboardEntry | null> {
    return promised(async () => {
      requireMember('member', member)
      const reply = await this.#run('entry', entryScript, [member])
      if (!reply) return null
      const [score, rank, better, count] = reply.map(Number) as [number, number, number, number]
      return { member, score, rank, percentile: ((count - better) / count) * 100 }
    })
  }

  /**
   * `n` entries above the member and `n` below, with it in the middle. With `fillBorders`, a
   * window that would run past either end is shifted, so it still holds 2n + 1 entries where the
   * board has them. Empty when the member is not on the board.
   */
  around(member: string, n: number, options?: { fillBorders?: boolean }): Promise<RankedEntry[]> {
    return promised(async () => {
      requireMember('member', member)
      // 2n + 1 entries: at most MAX_BATCH in one call.
      requireIntegerInRange('n', n, 0, Math.floor((MAX_BATCH - 1) / 2))
      const opts = requireOptions('options', options)
      requireKnownOptions('options', opts, ['fillBorders'])
      const fill = opts.fillBorders === undefined ? true : requireBoolean('fillBorders', opts.fillBorders)
      const reply = await this.#run('around', aroundScript, [member, n, fill ? '1' : '0'])
      return reply === null ? [] : this.#entries(reply)
    })
  }

  /**
   * A board of just these members (friends): ranked among themselves by the board's policies, each
   * with its global rank. Members not on the board are left out.
   */
  among(members: readonly string[]): Promise<AmongEntry[]> {
    return promised(async () => {
      const list = requireArray<string>('members', members)
      if (list.length > MAX_BATCH) throw new InvalidArgumentError('members', `must hold at most ${MAX_BATCH}`)
      const unique = [...new Set(list.map((m, i) => requireMember(`members[${i}]`, m)))]
      const reply = await this.#run('among', amongScript, unique)
      const found: Array<{ member: string; score: number; globalRank: number; key: Buffer }> = []
      for (let i = 0; i < unique.length; i++) {
        if (reply[3 * i] === null) continue
        found.push({
          member: unique[i]!,
          score: Number(reply[3 * i]),
          globalRank: Number(reply[3 * i + 1]),
          key: Buffer.from(String(reply[3 * i + 2])),
        })
      }
      const desc = this.#o.order === 'desc'
      // The board's own order: score, then the sorted-set name bytewise (reversed on desc boards,
      // which Redis reads in reverse).
      found.sort((a, b) => {
        if (a.score !== b.score) return desc ? b.score - a.score : a.score - b.score
        const c = Buffer.compare(a.key, b.key)
        return desc ? -c : c
      })
      return rankList(found, this.#o.ranking).map(({ member, score, rank, globalRank }) => ({
        member,
        score,
        rank,
        globalRank,
      }))
    })
  }

  /**
   * Entries from a page() reply: {offset, rank of the first, name, score, …}. The rest of the ranks
   * follow from the scores: the same for an equal score; else the position (competition) or one
   * more (dense); always the position for ordinal.
   */
  #entries(
    reply: ReadonlyArray<string | number>,
    // A plain range read (top) passes its reply as it came, with the offset and first rank apart:
    // copying 200 elements to put two in front cost a tenth of a top(100).
    start = 2,
    offset = Number(reply[0]),
    first = Number(reply[1]),
  ): RankedEntry[] {
    const strip = this.#o.ties === 'first-reached' ? 14 : 0
    const ranking = this.#o.ranking
    const out: RankedEntry[] = new Array((reply.length - start) >> 1)
    let rank = first
    let prev = Number.NaN
    for (let i = start, n = 0; i + 1 < reply.length; i += 2, n++) {
      const score = Number(reply[i + 1])
      const position = offset + n + 1
      if (ranking === 'ordinal') rank = position
      else if (n > 0 && score !== prev) rank = ranking === 'competition' ? position : rank + 1
      prev = score
      const name = reply[i] as string
      out[n] = { member: strip ? name.slice(strip) : name, score, rank }
    }
    return out
  }

  count(): Promise<number> {
    return promised(() =>
      instrument({ package: PKG, operation: 'count' }, () =>
        this.#guard.run('count', () => this.#o.redis.zcard(this.#keys[0]!)),
      ),
    )
  }

  /** Removes a member; resolves to whether it was on the board. */
  remove(member: string): Promise<boolean> {
    return promised(async () => {
      requireMember('member', member)
      return (await this.#run('remove', removeScript, [member])) === 1
    })
  }

  /** Deletes the whole board (its scores, tie and dense indexes, remembered submission ids). */
  clear(): Promise<void> {
    return promised(async () => {
      await instrument({ package: PKG, operation: 'clear' }, () =>
        this.#guard.run('clear', () => this.#o.redis.del(...this.#keys, this.#policyKey)),
      )
      // The policy went with the board: the next write stores it again, and checks it.
      this.#policyOk = false
      this.#policyChecked = null
    })
  }

  /**
   * Every entry, best first, in batches, from a snapshot taken when the export starts (COPY into a
   * key with a TTL): writes during the export neither skip nor repeat anyone.
   */
  export(options?: { batchSize?: number; snapshotTtlMs?: number }): AsyncIterable<RankedEntry[]> {
    let batchSize: number
    let ttl: number
    try {
      const opts = requireOptions('options', options)
      requireKnownOptions('options', opts, ['batchSize', 'snapshotTtlMs'])
      batchSize = opts.batchSize === undefined ? 1_000 : requireCount('batchSize', opts.batchSize, 1)
      ttl =
        opts.snapshotTtlMs === undefined
          ? 600_000
          : requirePositiveInteger('snapshotTtlMs', opts.snapshotTtlMs)
    } catch (error) {
      return (async function* () {
        yield* []
        throw error
      })()
    }
    return this.#export(batchSize, ttl)
  }

  async *#export(batchSize: number, ttlMs: number): AsyncGenerator<RankedEntry[]> {
    const snap = this.#snapshot(nanoid())
    const redis = this.#o.redis
    const total = await this.#run('export', snapshotScript, [ttlMs], [...this.#keys, snap])
    const desc = this.#o.order === 'desc'
    const ranking = this.#o.ranking
    const first = this.#o.ties === 'first-reached'
    try {
      let rank = 0
      let prev: number | null = null
      for (let offset = 0; offset < total; offset += batchSize) {
        // Each batch also renews the snapshot's TTL, and a snapshot that expired anyway (a consumer
        // slower than snapshotTtlMs between two batches) fails the export instead of ending it early.
        const replies = (await instrument({ package: PKG, operation: 'export' }, () =>
          this.#guard.run('export', () =>
            redis
              .pipeline()
              .pexpire(snap, ttlMs)
              [desc ? 'zrevrange' : 'zrange'](snap, offset, offset + batchSize - 1, 'WITHSCORES')
              .exec(),
          ),
        )) as Array<[Error | null, unknown]> | null
        // exec() reports each command's error in its reply instead of rejecting.
        const failed = replies?.find(([error]) => error)
        if (!replies || failed)
          throw toRpError(failed?.[0] ?? new Error('export: the pipeline was discarded'), 'export')
        const renewed = replies[0]![1] as number
        const raw = replies[1]![1] as string[]
        if (renewed !== 1)
          throw new RpError(
            'RP_EXPORT_EXPIRED',
            `export: the snapshot expired after ${offset} of ${total} entries; raise snapshotTtlMs`,
          )
        const batch: RankedEntry[] = []
        for (let i = 0; i < raw.length; i += 2) {
          const score = Number(raw[i + 1])
          const position = offset + i / 2 + 1
          if (ranking === 'ordinal') rank = position
          else if (score !== prev) rank = ranking === 'competition' ? position : rank + 1
          prev = score
          batch.push({ member: first ? raw[i]!.slice(14) : raw[i]!, score, rank })
        }
        if (batch.length) yield batch
      }
    } finally {
      await this.#guard.run('export', () => redis.del(snap)).catch(() => {})
    }
  }
}

function expiredCycle(): InvalidArgumentError {
  return new InvalidArgumentError(
    'date',
    'this cycle has expired (more than keep cycles ago): nothing written would stay',
  )
}

/** Ranks an ordered list by a ranking policy. */
function rankList<T extends { score: number }>(
  list: readonly T[],
  ranking: string,
): Array<T & { rank: number }> {
  let rank = 0
  let prev: number | null = null
  return list.map((item, i) => {
    if (ranking === 'ordinal') rank = i + 1
    else if (item.score !== prev) rank = ranking === 'competition' ? i + 1 : rank + 1
    prev = item.score
    return { ...item, rank }
  })
}
