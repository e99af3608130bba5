import {
  assertUsableClient,
  type BatchOption,
  InvalidArgumentError,
  type RedisClient,
  requireBoolean,
  requireDurationMs,
  requireFunction,
  requireGivenOptions,
  requireIntegerInRange,
  requireKnownOptions,
  requireNonEmptyString,
  requireOneOf,
  requirePositiveInteger,
  requireTimeoutMs,
  requireWellFormedString,
} from '@rp/core/kit'
import { jsonCodec, type SessionCodec } from './codec.js'
import { SessionKeys } from './session-keys.js'

/**
 * What get() does when Redis is down or slower than timeoutMs: `'throw'` a RedisUnavailableError or
 * TimeoutError (the app answers 503), or `'anonymous'`: answer null, as if there were no session.
 * Writes always reject: they never report a success that did not happen.
 */
export type SessionFailurePolicy = 'throw' | 'anonymous'

export interface SessionStoreOptions extends BatchOption {
  redis: RedisClient
  /** Key namespace; default `sess`. */
  prefix?: string
  /** A session not seen for this long expires; default 30 minutes. */
  idleTtlMs?: number
  /** No session lives longer than this after its creation, however active; default 7 days. */
  absoluteTtlMs?: number
  /** Whether get() moves the idle expiry (rolling sessions); default true. */
  rolling?: boolean
  /** A rolling touch writes only when the last one is at least this old; default 0 (every time). */
  touchAfterMs?: number
  /** How long a destroyed id stays refused, so no write in flight brings it back; default idleTtlMs. */
  tombstoneMs?: number
  /** Most bytes a session's encoded data may take; default 64 KiB. */
  maxBytes?: number
  /** Encodes each top-level field; default JSON. */
  codec?: SessionCodec
  /** Bound on one Redis call; default 1000. */
  timeoutMs?: number
  /** Default `'throw'`. */
  failure?: SessionFailurePolicy
}

export const SESSION_OPTION_NAMES = [
  'redis',
  'prefix',
  'idleTtlMs',
  'absoluteTtlMs',
  'rolling',
  'touchAfterMs',
  'tombstoneMs',
  'maxBytes',
  'codec',
  'timeoutMs',
  'batch',
  'failure',
] as const

/** @internal */
export interface ResolvedSessionOptions {
  redis: RedisClient
  prefix: string
  keys: SessionKeys
  idleTtlMs: number
  absoluteTtlMs: number
  rolling: boolean
  touchAfterMs: number
  tombstoneMs: number
  maxBytes: number
  codec: SessionCodec
  jsonOnly: boolean
  timeoutMs: number
  batch: boolean
  failure: SessionFailurePolicy
}

/** Longest id or user id accepted; longer ones are refused before they reach Redis. */
export const MAX_ID_LENGTH = 256
/** Most top-level data fields a session may hold (and one write may carry). */
export const MAX_FIELDS = 1_000
/** Longest top-level field name. */
export const MAX_FIELD_NAME = 1_024
/** Longest TTL the store takes: ten years of ms. */
export const MAX_TTL_MS = 10 * 365 * 86_400_000

export function resolveSessionOptions(options: SessionStoreOptions): ResolvedSessionOptions {
  requireGivenOptions('options', options)
  requireKnownOptions('options', options, SESSION_OPTION_NAMES)
  assertUsableClient(options.redis)
  const prefix = requireNonEmptyString('prefix', options.prefix ?? 'sess')
  const idleTtlMs = requireTtlMs('idleTtlMs', options.idleTtlMs ?? 30 * 60_000)
  const absoluteTtlMs = requireTtlMs('absoluteTtlMs', options.absoluteTtlMs ?? 7 * 86_400_000)
  if (absoluteTtlMs < idleTtlMs)
    throw new InvalidArgumentError(
      'absoluteTtlMs',
      `must be at least idleTtlMs (${idleTtlMs}), got ${absoluteTtlMs}`,
    )
  const rolling = options.rolling ?? true
  if (typeof rolling !== 'boolean') throw new InvalidArgumentError('rolling', 'must be true or false')
  const touchAfterMs = requireDurationMs('touchAfterMs', options.touchAfterMs ?? 0)
  // A throttle as long as the idle TTL would let an active session expire between two writes.
  if (touchAfterMs >= idleTtlMs)
    throw new InvalidArgumentError(
      'touchAfterMs',
      `must be less than idleTtlMs (${idleTtlMs}), got ${touchAfterMs}`,
    )
  const codec = options.codec ?? jsonCodec
  if (typeof codec !== 'object' || codec === null)
    throw new InvalidArgumentError('codec', 'must be an object')
  requireFunction('codec.encode', codec.encode)
  requireFunction('codec.decode', codec.decode)
  return {
    redis: options.redis,
    prefix,
    keys: new SessionKeys(prefix),
    idleTtlMs,
    absoluteTtlMs,
    rolling,
    touchAfterMs,
    tombstoneMs: requireTtlMs('tombstoneMs', options.tombstoneMs ?? idleTtlMs),
    maxBytes: requirePositiveInteger('maxBytes', options.maxBytes ?? 64 * 1024),
    codec,
    jsonOnly: codec === jsonCodec,
    timeoutMs: requireTimeoutMs('timeoutMs', options.timeoutMs ?? 1_000),
    batch: requireBoolean('batch', options.batch ?? true),
    failure: requireOneOf('failure', options.failure ?? 'throw', ['throw', 'anonymous'] as const),
  }
}

/** A TTL: a positive integer of ms, at most ten years (timers never hold it; Redis does). */
function requireTtlMs(name: string, value: unknown): number {
  return requireIntegerInRange(name, value, 1, MAX_TTL_MS)
}

/** A session id or user id: a non-empty string of at most MAX_ID_LENGTH characters. */
export function requireId(name: string, value: unknown): string {
  // Ids are hashed as UTF-8, where a lone surrogate becomes U+FFFD: two ids would open one session.
  requireWellFormedString(name, value)
  if ((value as string).length > MAX_ID_LENGTH)
    throw new InvalidArgumentError(
      name,
      `must be at most ${MAX_ID_LENGTH} characters, got ${(value as string).length}`,
    )
  return value as string
}
