import {
  defineScript,
  describe,
  InvalidArgumentError,
  instrument,
  keyspace,
  promised,
  RedisGuard,
  requireFunction,
  requireIntegerInRange,
  requireNonEmptyString,
} from '@rp/core/kit'
import { CYCLE_NAMES, type Cycle, type CycleWindow, cycleOf, zoneFormatter } from './cycles.js'
import { cycleBoard, type Leaderboard } from './leaderboard.js'
import { type LeaderboardOptions, resolveLeaderboardOptions } from './options.js'

export interface PeriodicLeaderboardOptions extends LeaderboardOptions {
  /** 'minute' | 'hourly' | 'daily' | 'weekly' (ISO 8601: Monday start) | 'monthly' | 'yearly', or a function. */
  cycle: Cycle
  /** UTC (default) or any IANA zone; cycles follow its wall clock, DST changes included. */
  timeZone?: string
  /** Past cycles kept after a cycle ends, then its keys expire; default 1. */
  keep?: number
  /** The clock that picks the current cycle (scores still live in Redis); default Date.now. */
  now?: () => number
}

/**
 * Adds a cycle to the index: KEYS[1] a sorted set of `start:end:key` by expiry. ARGV[1] the entry,
 * ARGV[2] its expiry (epoch ms). Entries past their expiry are trimmed; an expired one is not added.
 * The key's TTL is the latest expiry in it. Reply: 1 if added.
 */
const addCycleScript = defineScript<number>({
  name: 'leaderboard.addCycle',
  keys: 1,
  lua: `
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
if tonumber(ARGV[2]) <= now then return 0 end
redis.call('ZADD', KEYS[1], ARGV[2], ARGV[1])
local last = redis.call('ZRANGE', KEYS[1], -1, -1, 'WITHSCORES')
redis.call('PEXPIREAT', KEYS[1], last[2])
return 1
`,
})

/** KEYS[1] the cycles index. Reply: the entries not yet expired, on the server clock. A read. */
const listCyclesScript = defineScript<string[]>({
  name: 'leaderboard.listCycles',
  keys: 1,
  flags: ['no-writes'],
  lua: `
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
return redis.call('ZRANGEBYSCORE', KEYS[1], '(' .. now, '+inf')
`,
})

/**
 * A leaderboard per cycle (daily, weekly, …) in a time zone, each its own board (its own slot),
 * whose keys expire `keep` cycles after it ends. An index of cycles lists them: nothing SCANs.
 */
export class PeriodicLeaderboard {
  readonly #options: LeaderboardOptions
  readonly #cycle: Cycle
  readonly #timeZone: string
  readonly #keep: number
  readonly #now: () => number
  readonly #index: string
  readonly #guard: RedisGuard
  readonly #boards = new Map<string, Leaderboard>()

  /** @throws InvalidArgumentError for a bad or unknown option. */
  constructor(options: PeriodicLeaderboardOptions) {
    const resolved = resolveLeaderboardOptions(options, ['cycle', 'timeZone', 'keep', 'now'])
    const { cycle, timeZone, keep, now, ...board } = options
    if (typeof cycle !== 'function' && !CYCLE_NAMES.includes(cycle as never))
      throw new InvalidArgumentError(
        'cycle',
        `must be one of ${CYCLE_NAMES.join(', ')} or a function, got ${describe(cycle)}`,
      )
    this.#cycle = cycle
    this.#timeZone = requireNonEmptyString('timeZone', timeZone ?? 'UTC')
    zoneFormatter(this.#timeZone)
    this.#keep = keep === undefined ? 1 : requireIntegerInRange('keep', keep, 0, 1_000)
    this.#now = now === undefined ? Date.now : requireFunction('now', now)
    // Cycle boards live in a namespace of their own (`<prefix>:cycle`), so no plain board, whatever
    // its name, shares their keys; and each kind of cycle has its own index.
    this.#options = { ...board, prefix: `${resolved.prefix}:cycle` }
    this.#index = keyspace(`${resolved.prefix}:cycle`).key(
      resolved.name,
      'cycles',
      typeof cycle === 'function' ? 'custom' : cycle,
    )
    this.#guard = new RedisGuard(resolved.redis, resolved.timeoutMs, { batch: resolved.batch })
  }

  /** The window of the cycle containing `at` (default: now). */
  window(at?: Date | number): CycleWindow {
    return cycleOf(this.#cycle, this.#timeZone, at === undefined ? this.#clock() : epochMs('date', at))
  }

  #clock(): number {
    return epochMs('now', this.#now())
  }

  current(): Leaderboard {
    return this.at(this.#clock())
  }

  previous(): Leaderboard {
    return this.at(this.window().start - 1)
  }

  /** The board of the cycle containing `date`. */
  at(date: Date | number): Leaderboard {
    const window = cycleOf(this.#cycle, this.#timeZone, epochMs('date', date))
    let board = this.#boards.get(window.key)
    if (!board) {
      // Expire keep cycles after this one ends: the end of the cycle `keep` cycles later.
      let last = window
      for (let i = 0; i < this.#keep; i++) last = cycleOf(this.#cycle, this.#timeZone, last.end)
      const expireAt = Math.max(last.end, window.end + 1)
      board = cycleBoard(
        { ...this.#options, name: `${this.#options.name}:${window.key}` },
        { expireAt, onFirstWrite: () => this.#register(window, expireAt) },
      )
      this.#boards.set(window.key, board)
      // Boards of long-past cycles are dropped from this cache; at() rebuilds one on demand.
      if (this.#boards.size > 64)
        for (const [oldest] of this.#boards) {
          this.#boards.delete(oldest)
          break
        }
    }
    return board
  }

  /** The cycles that have boards (written to, not yet expired), oldest first, from the index. */
  cycles(): Promise<CycleWindow[]> {
    return promised(async () => {
      const raw = (await instrument({ package: 'leaderboard', operation: 'cycles' }, () =>
        this.#guard.script('cycles', listCyclesScript, [this.#index]),
      )) as string[]
      return raw
        .map((entry) => {
          const [start, end] = entry.split(':', 2).map(Number) as [number, number]
          return { key: entry.slice(entry.indexOf(':', entry.indexOf(':') + 1) + 1), start, end }
        })
        .sort((a, b) => a.start - b.start)
    })
  }

  #register(window: CycleWindow, expireAt: number): Promise<void> {
    return this.#guard
      .run('cycles', () =>
        addCycleScript.run(
          this.#options.redis,
          [this.#index],
          [`${window.start}:${window.end}:${window.key}`, expireAt],
        ),
      )
      .then(() => undefined)
  }
}

/** The last instant of year 9999: cycle keys and windows are calendar dates Intl can print. */
const MAX_EPOCH_MS = 253_402_300_799_999

/** Epoch ms from a Date or a number, within the years 1970 to 9999. */
function epochMs(name: string, at: unknown): number {
  let ms = at
  if (at instanceof Date) {
    try {
      ms = Date.prototype.getTime.call(at)
    } catch {
      ms = Number.NaN // a Proxy of a Date, or another object dressed as one
    }
  }
  if (typeof ms !== 'number' || !Number.isFinite(ms) || ms < 0 || ms > MAX_EPOCH_MS)
    throw new InvalidArgumentError(
      name,
      `must be a valid Date or epoch ms from 1970 to the end of 9999, got ${at instanceof Date ? 'an invalid Date' : describe(at)}`,
    )
  return ms
}
