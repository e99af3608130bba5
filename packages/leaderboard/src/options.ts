import {
  assertUsableClient,
  type BatchOption,
  describe,
  InvalidArgumentError,
  type RedisClient,
  requireBoolean,
  requireGivenOptions,
  requireIntegerInRange,
  requireKnownOptions,
  requireNonEmptyString,
  requireOneOf,
  requireTimeoutMs,
  requireWellFormedString,
} from '@rp/core/kit'

export type Order = 'desc' | 'asc'
export type UpdatePolicy = 'replace' | 'best' | 'increment'
export type TiePolicy = 'first-reached' | 'member'
export type Ranking = 'ordinal' | 'dense' | 'competition'

export interface LeaderboardOptions extends BatchOption {
  redis: RedisClient
  /** Key namespace; default `lb`. */
  prefix?: string
  /** The board's name: its hash tag, so one board is one cluster slot. */
  name: string
  /** `'desc'` (default: higher is better) or `'asc'` (golf, speedruns). */
  order?: Order
  /** What a submit does with an existing score: `'best'` (default), `'replace'` or `'increment'`. */
  update?: UpdatePolicy
  /** Who ranks higher on equal scores: `'first-reached'` (default) or `'member'` (Redis's order). */
  ties?: TiePolicy
  /** `'competition'` 1224 (default), `'dense'` 1223 or `'ordinal'` 1234. */
  ranking?: Ranking
  /** Keep at most this many members: the worst are trimmed in the same script. */
  maxMembers?: number
  /** How long a submissionId is remembered, so a retried submit is a no-op; default 24 h. */
  submissionTtlMs?: number
  /** Bound on one Redis call; default 1000. */
  timeoutMs?: number
}

export const LEADERBOARD_OPTION_NAMES = [
  'redis',
  'prefix',
  'name',
  'order',
  'update',
  'ties',
  'ranking',
  'maxMembers',
  'submissionTtlMs',
  'timeoutMs',
  'batch',
] as const

/** Largest |score|: integers up to it are exact in a double, so increments stay exact. */
export const MAX_SCORE = Number.MAX_SAFE_INTEGER
/** Longest member, in UTF-8 bytes. */
export const MAX_MEMBER_BYTES = 512
/** Most entries one call reads or writes. */
export const MAX_BATCH = 10_000

/** @internal */
export interface ResolvedLeaderboardOptions {
  redis: RedisClient
  prefix: string
  name: string
  order: Order
  update: UpdatePolicy
  ties: TiePolicy
  ranking: Ranking
  maxMembers: number | null
  submissionTtlMs: number
  timeoutMs: number
  batch: boolean
}

export function resolveLeaderboardOptions(
  options: LeaderboardOptions,
  extra: readonly string[] = [],
): ResolvedLeaderboardOptions {
  requireGivenOptions('options', options)
  requireKnownOptions('options', options, [...LEADERBOARD_OPTION_NAMES, ...extra])
  assertUsableClient(options.redis)
  const maxMembers =
    options.maxMembers === undefined
      ? null
      : requireIntegerInRange('maxMembers', options.maxMembers, 1, 2 ** 32)
  return {
    redis: options.redis,
    prefix: requireNonEmptyString('prefix', options.prefix ?? 'lb'),
    name: requireNonEmptyString('name', options.name),
    order: requireOneOf('order', options.order ?? 'desc', ['desc', 'asc'] as const),
    update: requireOneOf('update', options.update ?? 'best', ['replace', 'best', 'increment'] as const),
    ties: requireOneOf('ties', options.ties ?? 'first-reached', ['first-reached', 'member'] as const),
    ranking: requireOneOf('ranking', options.ranking ?? 'competition', [
      'ordinal',
      'dense',
      'competition',
    ] as const),
    maxMembers,
    submissionTtlMs: requireTimeoutMs('submissionTtlMs', options.submissionTtlMs ?? 86_400_000),
    timeoutMs: requireTimeoutMs('timeoutMs', options.timeoutMs ?? 1_000),
    batch: requireBoolean('batch', options.batch ?? true),
  }
}

export function requireMember(name: string, value: unknown): string {
  // UTF-8 cannot carry a lone surrogate: Redis would store U+FFFD, and two members would be one.
  requireWellFormedString(name, value)
  const bytes = Buffer.byteLength(value as string)
  if (bytes > MAX_MEMBER_BYTES)
    throw new InvalidArgumentError(name, `must be at most ${MAX_MEMBER_BYTES} bytes of UTF-8, got ${bytes}`)
  return value as string
}

export function requireScore(name: string, value: unknown): number {
  if (typeof value !== 'number' || !Number.isFinite(value))
    throw new InvalidArgumentError(name, `must be a finite number, got ${describe(value)}`)
  if (Math.abs(value) > MAX_SCORE)
    throw new InvalidArgumentError(name, `must be within ±${MAX_SCORE} (exact in a double), got ${value}`)
  return value
}

/** A count, offset or page size: an integer in [min, MAX_BATCH]. */
export function requireCount(name: string, value: unknown, min = 0): number {
  return requireIntegerInRange(name, value, min, MAX_BATCH)
}
