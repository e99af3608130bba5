import {
  deleteByPattern,
  InvalidArgumentError,
  instrument,
  isConnectionError,
  RedisGuard,
  RpError,
  type Script,
  type ScriptArg,
  scanKeys,
  TimeoutError,
  toJson,
} from '@rp/core/kit'
import { SessionConflictError, SessionTooLargeError } from './errors.js'
import { emit } from './events.js'
import { MAX_FIELD_NAME, MAX_FIELDS, type ResolvedSessionOptions } from './options.js'
import {
  clearScript,
  destroyScript,
  getScript,
  indexAddScript,
  indexRemoveScript,
  touchScript,
  writeScript,
} from './scripts.js'
import type { SessionMeta } from './session.js'
import { SessionKeys } from './session-keys.js'

/** A stored session, decoded: what get() and the framework adapters build their answers from. */
export interface StoredSession {
  handle: string
  userId: string | null
  data: Record<string, unknown>
  /** The encoded fields as stored, by stored field name (fieldName): what a framework save diffs against. */
  readonly encoded: Map<string, string>
  meta: SessionMeta
  createdAt: number
  lastSeenAt: number
  expiresAt: number
  absoluteExpiresAt: number
  version: number
  idleTtlMs: number
}

/** A StoredSession that keeps the per-field encodings it was read from. */
class Stored implements StoredSession {
  createdAt: number
  lastSeenAt: number
  expiresAt: number
  absoluteExpiresAt: number
  version: number
  idleTtlMs: number

  constructor(
    readonly handle: string,
    readonly userId: string | null,
    readonly data: Record<string, unknown>,
    readonly encoded: Map<string, string>,
    readonly meta: SessionMeta,
    times: Pick<
      StoredSession,
      'createdAt' | 'lastSeenAt' | 'expiresAt' | 'absoluteExpiresAt' | 'version' | 'idleTtlMs'
    >,
  ) {
    this.createdAt = times.createdAt
    this.lastSeenAt = times.lastSeenAt
    this.expiresAt = times.expiresAt
    this.absoluteExpiresAt = times.absoluteExpiresAt
    this.version = times.version
    this.idleTtlMs = times.idleTtlMs
  }
}

export type WriteMode = 'create' | 'upsert' | 'merge' | 'replace'

export interface WriteRequest {
  mode: WriteMode
  /** Encoded data fields to set, by stored field name (fieldName). */
  set: ReadonlyMap<string, string>
  /** Stored names of data fields to remove. */
  del?: readonly string[]
  expectedVersion?: number
  /** Roll the idle expiry as part of the write. */
  touch: boolean
  /** Idle TTL for this write (a framework cookie's maxAge); default the session's own. */
  idleTtlMs?: number
  userId?: string | null
  meta?: string
  absoluteExpiresAt?: number
  createdAt?: number
}

export type WriteResult =
  | {
      status: 'ok'
      version: number
      expiresAt: number
      absoluteExpiresAt: number
      now: number
      createdAt: number
    }
  | { status: 'gone' | 'missing' | 'exists' }

/**
 * A data field's name in the hash: '.' and the name as a JSON string (`."cart"`), so a read
 * splices fields into one JSON object text and parses once.
 */
export function fieldName(name: string): string {
  return `.${JSON.stringify(name)}`
}

/** A command refused because the key holds another type: a data error for that key alone. */
export function isWrongType(error: unknown): boolean {
  const cause = (error as { cause?: unknown })?.cause
  const message = cause instanceof Error ? cause.message : error instanceof Error ? error.message : ''
  return message.includes('WRONGTYPE')
}

/** A script's HGETALL reply (a flat array) as ioredis's hgetall would give it; null stays null. */
export function pairsToObject(raw: readonly string[] | null): Record<string, string> | null {
  if (!raw) return null
  const fields: Record<string, string> = {}
  for (let i = 0; i + 1 < raw.length; i += 2)
    Object.defineProperty(fields, raw[i]!, {
      value: raw[i + 1]!,
      enumerable: true,
      writable: true,
      configurable: true,
    })
  return fields
}

/**
 * Everything that talks to Redis for a SessionStore and its framework adapters: one bounded call
 * path, the codec, and the translation of script replies into results and typed errors. The
 * adapters use it directly, so they run through the same atomic scripts as the core API.
 */
export class SessionEngine {
  readonly options: ResolvedSessionOptions
  readonly #guard: RedisGuard

  constructor(options: ResolvedSessionOptions) {
    this.options = options
    this.#guard = new RedisGuard(options.redis, options.timeoutMs, { batch: options.batch })
  }

  call<T>(operation: string, work: () => Promise<T>): Promise<T> {
    return instrument({ package: 'session', operation }, () => this.#guard.run(operation, work))
  }

  /** `call` for one script: batched with the tick's other calls unless `batch: false`. */
  script<T>(
    operation: string,
    script: Script<T>,
    keys: readonly string[],
    args?: readonly ScriptArg[],
  ): Promise<T> {
    return instrument({ package: 'session', operation }, () =>
      this.#guard.script(operation, script, keys, args),
    )
  }

  /** Encodes a data object's top-level fields, keyed by stored name; undefined values are deletions. */
  async encode(
    argument: string,
    data: Record<string, unknown>,
  ): Promise<{ set: Map<string, string>; del: string[] }> {
    const { codec, jsonOnly } = this.options
    const set = new Map<string, string>()
    const del: string[] = []
    let count = 0
    for (const field in data) {
      if (!Object.hasOwn(data, field)) continue
      if (++count > MAX_FIELDS)
        throw new InvalidArgumentError(argument, `must have at most ${MAX_FIELDS} top-level fields`)
      if (field.length > MAX_FIELD_NAME)
        throw new InvalidArgumentError(
          argument,
          `field names must be at most ${MAX_FIELD_NAME} characters, got ${field.length}`,
        )
      const value = data[field]
      if (value === undefined) {
        del.push(fieldName(field))
        continue
      }
      let text: unknown
      if (jsonOnly) text = toJson(`${argument}.${field}`, value)
      else {
        try {
          const encoded = codec.encode(value)
          text = encoded instanceof Promise ? await encoded : encoded
        } catch (error) {
          throw new InvalidArgumentError(
            `${argument}.${field}`,
            `the codec could not encode it: ${String(error)}`,
          )
        }
        if (typeof text !== 'string' || text.length === 0)
          throw new InvalidArgumentError(
            'codec.encode',
            `must return a non-empty string, got ${JSON.stringify(text)}`,
          )
      }
      set.set(fieldName(field), text as string)
    }
    // As the script counts: the stored field name ('.' + name) and the value, in bytes.
    let bytes = 0
    for (const [field, text] of set) bytes += Buffer.byteLength(field) + Buffer.byteLength(text)
    if (bytes > this.options.maxBytes) throw new SessionTooLargeError(bytes, this.options.maxBytes)
    return { set, del }
  }

  /**
   * The live session with this id, or null. Connection trouble follows the failure policy; an
   * undecodable session reads as null and is reported, never thrown at the request. Without a
   * touch it is one HGETALL: the key's TTL is the stored expiry, so a key that exists is live, and
   * a tombstone has no `@e`.
   */
  async read(
    operation: string,
    id: string,
    touch: boolean,
    idleTtlMs?: number,
    /** false for a read that a write depends on: it rejects when Redis is down, whatever the policy. */
    policy = true,
  ): Promise<StoredSession | null> {
    const handle = SessionKeys.handle(id)
    const { keys, touchAfterMs } = this.options
    let reply: Array<string | number> | null
    try {
      reply = await this.script(
        operation,
        getScript,
        [keys.session(handle)],
        [touch ? '1' : '0', touchAfterMs, idleTtlMs ?? ''],
      )
    } catch (error) {
      if (isWrongType(error)) return this.corrupt(handle, operation, error)
      if (
        policy &&
        this.options.failure === 'anonymous' &&
        (isConnectionError(error) || error instanceof TimeoutError)
      ) {
        emit({ package: 'session', event: 'failure-policy', operation, error })
        return null
      }
      throw error
    }
    if (!reply) return null
    if (reply.length < 9) return this.corrupt(handle, operation, null)
    const data = new Map<string, string>()
    for (let i = 9; i + 1 < reply.length; i += 2) data.set(String(reply[i]), String(reply[i + 1]))
    return this.#build(handle, reply.slice(1, 7) as number[], String(reply[7]), String(reply[8]), data)
  }

  /** A key this store cannot read: reported, and read as no session. */
  corrupt(handle: string, operation: string, error: unknown): null {
    emit({
      package: 'session',
      event: 'decode-error',
      handle,
      field: '*',
      error: error ?? new Error(`${operation}: not a session this store wrote`),
    })
    return null
  }

  /** A stored hash (HGETALL) as a session; null (and a `decode-error` event) when unreadable. */
  decode(handle: string, fields: Record<string, string>): Promise<StoredSession | null> {
    const pairs = new Map<string, string>()
    for (const name in fields) if (name.charCodeAt(0) === 46 /* '.' */) pairs.set(name, fields[name]!)
    const nums = ['@c', '@l', '@e', '@a', '@v', '@i'].map((name) => Number(fields[name] ?? Number.NaN))
    return this.#build(handle, nums, fields['@u'] ?? '', fields['@m'] ?? '', pairs)
  }

  /**
   * A session from its parts: `data` holds the stored data fields, by stored field name. With the
   * JSON codec they are joined into one object text and parsed once.
   */
  async #build(
    handle: string,
    nums: readonly number[],
    userId: string,
    metaText: string,
    data: Map<string, string>,
  ): Promise<StoredSession | null> {
    const { codec, jsonOnly } = this.options
    let field = '@m'
    try {
      const meta = metaText ? (JSON.parse(metaText) as SessionMeta) : {}
      field = '@c'
      if (nums.length !== 6 || !nums.every(Number.isFinite))
        throw new Error('a number field is missing or not a number')
      let decoded: Record<string, unknown>
      if (jsonOnly) {
        field = '*'
        // JSON.parse defines own properties: a field named __proto__ stays data.
        let spliced = '{'
        for (const [name, value] of data)
          spliced += `${spliced.length > 1 ? ',' : ''}${name.slice(1)}:${value}`
        decoded = JSON.parse(`${spliced}}`) as Record<string, unknown>
      } else {
        const entries: Array<[string, unknown]> = []
        for (const [name, value] of data) {
          field = name
          const key = JSON.parse(name.slice(1)) as string
          const result = codec.decode(value)
          entries.push([key, result instanceof Promise ? await result : result])
        }
        // fromEntries defines own properties: a field named __proto__ stays data.
        decoded = Object.fromEntries(entries)
      }
      const [createdAt, lastSeenAt, expiresAt, absoluteExpiresAt, version, idleTtlMs] = nums as [
        number,
        number,
        number,
        number,
        number,
        number,
      ]
      return new Stored(handle, userId || null, decoded, data, meta, {
        createdAt,
        lastSeenAt,
        expiresAt,
        absoluteExpiresAt,
        version,
        idleTtlMs,
      })
    } catch (error) {
      emit({ package: 'session', event: 'decode-error', handle, field, error })
      return null
    }
  }

  async write(operation: string, id: string, request: WriteRequest): Promise<WriteResult> {
    const handle = SessionKeys.handle(id)
    const o = this.options
    const args: Array<string | number> = [
      request.mode,
      request.expectedVersion ?? '',
      request.touch ? '1' : '0',
      request.idleTtlMs ?? '',
      o.maxBytes,
      o.idleTtlMs,
      o.absoluteTtlMs,
      request.absoluteExpiresAt ?? '',
      request.createdAt ?? '',
      request.userId ?? '',
      request.meta ?? '{}',
      request.set.size,
      MAX_FIELDS,
    ]
    for (const [field, text] of request.set) args.push(field, text)
    for (const field of request.del ?? []) args.push(field)
    let reply: Array<string | number>
    try {
      reply = await this.script(operation, writeScript, [o.keys.session(handle)], args)
    } catch (error) {
      if (!isWrongType(error)) throw error
      reply = ['corrupt']
    }
    const status = String(reply[0])
    switch (status) {
      case 'ok':
        return {
          status,
          version: Number(reply[1]),
          expiresAt: Number(reply[2]),
          absoluteExpiresAt: Number(reply[3]),
          now: Number(reply[4]),
          createdAt: Number(reply[5]),
        }
      case 'conflict':
        throw new SessionConflictError(request.expectedVersion!, Number(reply[1]))
      case 'too-large':
        throw new SessionTooLargeError(Number(reply[1]), o.maxBytes)
      case 'too-many':
        throw new SessionTooLargeError(Number(reply[1]), MAX_FIELDS, 'fields')
      case 'corrupt':
        this.corrupt(handle, operation, null)
        return { status: 'missing' }
      case 'gone':
        emit({ package: 'session', event: 'write-after-destroy', handle, operation })
        return { status }
      case 'missing':
      case 'exists':
        return { status }
      default:
        throw new RpError('RP_SCRIPT_ERROR', `session.write answered ${JSON.stringify(reply)}`)
    }
  }

  async touch(operation: string, id: string, idleTtlMs?: number): Promise<number | null> {
    const o = this.options
    const handle = SessionKeys.handle(id)
    let expiresAt: number | null
    try {
      expiresAt = await this.script(
        operation,
        touchScript,
        [o.keys.session(handle)],
        [o.touchAfterMs, idleTtlMs ?? ''],
      )
    } catch (error) {
      if (!isWrongType(error)) throw error
      expiresAt = -1
    }
    return expiresAt === -1 ? this.corrupt(handle, operation, null) : expiresAt
  }

  /** Ends the session behind a handle and leaves a tombstone; answers the stored fields, or null. */
  destroyHandle(
    operation: string,
    handle: string,
    withFields: boolean,
    force = false,
  ): Promise<string | string[] | null> {
    const o = this.options
    return this.script(
      operation,
      destroyScript,
      [o.keys.session(handle)],
      [o.tombstoneMs, withFields ? '1' : '0', force ? '1' : '0'],
    )
  }

  /** Adds a handle to a user's index; answers its absolute expiry (fixed on the server clock). */
  indexAdd(operation: string, userId: string, handle: string, absoluteExpiresAt?: number): Promise<number> {
    const o = this.options
    return this.script(
      operation,
      indexAddScript,
      [o.keys.user(userId)],
      ['add', handle, absoluteExpiresAt ?? '', o.absoluteTtlMs],
    ) as Promise<number>
  }

  /** Removes handles from a user's index (none: just trims); answers [handle, expiry, …] left. */
  indexRemove(operation: string, userId: string, handles: readonly string[]): Promise<string[]> {
    const o = this.options
    return this.script(
      operation,
      indexRemoveScript,
      [o.keys.user(userId)],
      ['remove', ...handles],
    ) as Promise<string[]>
  }

  /** Index removals are tidying: a failure leaves an entry that listForUser and the trim drop later. */
  async forget(operation: string, userId: string, handles: readonly string[]): Promise<void> {
    for (let i = 0; i < handles.length; i += 500) {
      await this.indexRemove(operation, userId, handles.slice(i, i + 500)).catch((error: unknown) =>
        emit({ package: 'session', event: 'index-error', operation, error }),
      )
    }
  }
}

/** Walks every master's session hashes of this store (tombstones included), a batch at a time. */
export async function* scanSessionKeys(engine: SessionEngine): AsyncGenerator<string[]> {
  const { redis, keys, timeoutMs } = engine.options
  for await (const batch of scanKeys(redis, {
    match: keys.sessionPattern(),
    count: 500,
    timeoutMs,
    type: 'hash',
  })) {
    const owned = batch.filter((key) => keys.handleOf(key) !== null)
    if (owned.length) yield owned
  }
}

/**
 * Every live session of the store, decoded, with its handle (the ids are never stored). A key that
 * vanished or changed type meanwhile is skipped: one odd key never fails the whole walk.
 */
export async function* scanSessions(engine: SessionEngine, operation: string): AsyncGenerator<StoredSession> {
  const { redis, keys } = engine.options
  for await (const batch of scanSessionKeys(engine)) {
    const replies = await Promise.all(
      batch.map((key) =>
        engine
          .call(operation, () => redis.hgetall(key))
          .catch((error: unknown) => {
            if (isWrongType(error)) return null
            throw error
          }),
      ),
    )
    for (let i = 0; i < batch.length; i++) {
      const fields = replies[i]
      if (!fields || fields['@e'] === undefined) continue
      const stored = await engine.decode(keys.handleOf(batch[i]!)!, fields)
      if (stored) yield stored
    }
  }
}

/** Deletes the store's live sessions (not tombstones) and users' indexes, on every master. */
export async function clearSessions(engine: SessionEngine): Promise<void> {
  const { redis, keys, timeoutMs } = engine.options
  for await (const batch of scanSessionKeys(engine)) {
    await Promise.all(
      batch.map((key) =>
        // Only a live session goes: a tombstone keeps refusing writes until it expires.
        engine.script('clear', clearScript, [key]),
      ),
    )
  }
  await deleteByPattern(redis, {
    match: keys.userPattern(),
    timeoutMs,
    type: 'zset',
    filter: (found) => found.filter((key) => keys.isUser(key)),
  })
}
