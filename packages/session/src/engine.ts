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
  saveScript,
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
  /** Whether the read that gave it rolled the idle expiry (not: no touch asked, or touchAfterMs). */
  rolled?: boolean
}

/** A StoredSession that can give back the per-field encodings it was read from. */
class Stored implements StoredSession {
  createdAt: number
  lastSeenAt: number
  expiresAt: number
  absoluteExpiresAt: number
  version: number
  idleTtlMs: number
  #dataText: string | null
  readonly #index: string
  readonly #userText: string
  readonly #metaText: string
  #encoded: Map<string, string> | null = null

  constructor(
    readonly handle: string,
    readonly userId: string | null,
    readonly data: Record<string, unknown>,
    layout: Pick<Layout, 'dataText' | 'index' | 'userText' | 'metaText'>,
    readonly meta: SessionMeta,
    times: Pick<
      StoredSession,
      'createdAt' | 'lastSeenAt' | 'expiresAt' | 'absoluteExpiresAt' | 'version' | 'idleTtlMs'
    >,
  ) {
    this.#dataText = layout.dataText
    this.#index = layout.index
    this.#userText = layout.userText
    this.#metaText = layout.metaText
    this.createdAt = times.createdAt
    this.lastSeenAt = times.lastSeenAt
    this.expiresAt = times.expiresAt
    this.absoluteExpiresAt = times.absoluteExpiresAt
    this.version = times.version
    this.idleTtlMs = times.idleTtlMs
  }

  /**
   * Parsed again from the stored text only when asked (a framework save, a regenerate): the app
   * may have changed `data` since. A value text is what JSON.stringify gave when it was written,
   * and JSON.stringify(JSON.parse(text)) gives that text back.
   */
  get encoded(): Map<string, string> {
    if (!this.#encoded) {
      this.#encoded = encodedFields(this.#dataText!, this.#index)
      this.#dataText = null
    }
    return this.#encoded
  }

  /** What a whole-value save of this version keeps of it (SessionEngine.saveLoaded). */
  get saveBase(): SaveBase {
    return {
      version: this.version,
      createdAt: this.createdAt,
      absoluteExpiresAt: this.absoluteExpiresAt,
      idleTtlMs: this.idleTtlMs,
      userText: this.#userText,
      metaText: this.#metaText,
    }
  }
}

/**
 * A loaded version of a session, as a save that replaces it whole must repeat it: its times, and
 * its user and meta as stored (ASCII JSON, '' for none).
 */
export interface SaveBase {
  version: number
  createdAt: number
  absoluteExpiresAt: number
  idleTtlMs: number
  userText: string
  metaText: string
}

/**
 * The stored data text's fields: JSON-quoted name → value text, in stored order. The index gives
 * each segment's length in bytes, which are its characters when the text is ASCII (the common
 * case); otherwise the text is parsed, and each field given back by JSON.stringify.
 */
export function encodedFields(dataText: string, index: string): Map<string, string> {
  const fields = new Map<string, string>()
  if (Buffer.byteLength(dataText) === dataText.length) {
    let pos = 1
    for (const segment of index ? index.split('.') : []) {
      const colon = segment.indexOf(':')
      const nameLength = Number(segment.slice(0, colon))
      const valueLength = Number(segment.slice(colon + 1))
      fields.set(
        dataText.slice(pos, pos + nameLength),
        dataText.slice(pos + nameLength + 1, pos + nameLength + 1 + valueLength),
      )
      pos += nameLength + valueLength + 2
    }
    return fields
  }
  const parsed = JSON.parse(dataText) as Record<string, unknown>
  for (const name in parsed) fields.set(JSON.stringify(name), JSON.stringify(parsed[name]))
  return fields
}

/** A stored value's parts (see scripts.ts for the layout), or null for one this store did not write. */
interface Layout {
  lastSeenAt: number
  expiresAt: number
  createdAt: number
  absoluteExpiresAt: number
  version: number
  idleTtlMs: number
  userText: string
  metaText: string
  dataText: string
  /** `<#name>:<#value>` per data field, joined by '.'. */
  index: string
}

const LAYOUT_HEAD = /^(\d+),(\d+),(\d+),(\d+),(\d+),(\d+),([\d:.]*)$/

export function parseLayout(v: string): Layout | null {
  if (typeof v !== 'string' || v.charCodeAt(0) !== 83 /* S */ || v.charCodeAt(1) !== 49 /* 1 */) return null
  const semi = v.indexOf(';', 28)
  if (semi < 0) return null
  const head = LAYOUT_HEAD.exec(v.slice(28, semi))
  if (!head) return null
  const userEnd = semi + 1 + Number(head[5])
  const metaEnd = userEnd + Number(head[6])
  return {
    lastSeenAt: Number(v.slice(2, 15)),
    expiresAt: Number(v.slice(15, 28)),
    createdAt: Number(head[1]),
    absoluteExpiresAt: Number(head[2]),
    version: Number(head[3]),
    idleTtlMs: Number(head[4]),
    userText: v.slice(semi + 1, userEnd),
    metaText: v.slice(userEnd, metaEnd),
    dataText: v.slice(metaEnd),
    index: head[7]!,
  }
}

/** The user id in a stored value, '' for none (or a value this store did not write). */
export function userIdOf(v: string): string {
  const layout = parseLayout(v)
  if (!layout?.userText) return ''
  try {
    const user = JSON.parse(layout.userText) as unknown
    return typeof user === 'string' ? user : ''
  } catch {
    return ''
  }
}

/** The fixed-width lastSeenAt and expiresAt of a value the client builds; the script sets them. */
const TIMES_PLACEHOLDER = '0'.repeat(26)

/** JSON text with every non-ASCII character \u-escaped: byte offsets equal character offsets. */
export function asciiJson(text: string): string {
  return text.replace(/[\u007f-\uffff]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`)
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

/** JSON.stringify, or undefined where it throws (toJson then explains why). */
function quickJson(value: unknown): string | undefined {
  try {
    return JSON.stringify(value)
  } catch {
    return undefined
  }
}

/** Encoded data fields to set (stored name → text) and stored names to delete. */
export interface EncodedFields {
  set: Map<string, string>
  del: string[]
}

/** The 'ok' reply of session.write or session.save as a result. */
function written(reply: Array<string | number>): Extract<WriteResult, { status: 'ok' }> {
  return {
    status: 'ok',
    version: Number(reply[1]),
    expiresAt: Number(reply[2]),
    absoluteExpiresAt: Number(reply[3]),
    now: Number(reply[4]),
    createdAt: Number(reply[5]),
  }
}

/** A data field's name as stored: JSON-quoted, so the stored data is one JSON object text. */
export function fieldName(name: string): string {
  return JSON.stringify(name)
}

/** A command refused because the key holds another type: a data error for that key alone. */
export function isWrongType(error: unknown): boolean {
  const cause = (error as { cause?: unknown })?.cause
  const message = cause instanceof Error ? cause.message : error instanceof Error ? error.message : ''
  return message.includes('WRONGTYPE')
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

  /**
   * Encodes a data object's top-level fields, keyed by stored name; undefined values are deletions.
   * Synchronous with the JSON codec, so a write reaches the tick's batch as soon as a read called
   * after it would (calls run in the order they are made); a codec of the user's may be async.
   */
  encode(
    argument: string,
    data: Record<string, unknown>,
    /**
     * The fields as stored (a framework save's load). A field whose JSON text is the stored one
     * is not written, so only the changed ones need the lossless check: most of a save's cost.
     */
    stored?: ReadonlyMap<string, string>,
  ): EncodedFields | Promise<EncodedFields> {
    const { values, del } = this.#fieldsOf(argument, data)
    const set = new Map<string, string>()
    if (this.options.jsonOnly) {
      for (const [name, field, value] of values) {
        const same = stored === undefined ? undefined : quickJson(value)
        set.set(
          name,
          same !== undefined && stored!.get(name) === same ? same : toJson(`${argument}.${field}`, value),
        )
      }
      return this.#sized({ set, del })
    }
    return (async () => {
      const { codec } = this.options
      for (const [name, field, value] of values) {
        let text: unknown
        try {
          const encoded = codec.encode(value)
          text = encoded instanceof Promise ? await encoded : encoded
        } catch (error) {
          throw new InvalidArgumentError(
            `${argument}.${field}`,
            `the codec could not encode it: ${String(error)}`,
          )
        }
        if (typeof text !== 'string')
          throw new InvalidArgumentError('codec.encode', `must return a string, got ${typeof text}`)
        // Stored as a JSON string, so the session's data stays one JSON object text.
        set.set(name, JSON.stringify(text))
      }
      return this.#sized({ set, del })
    })()
  }

  /** A data object's fields to write (stored name, name, value) and to delete, checked. */
  #fieldsOf(
    argument: string,
    data: Record<string, unknown>,
  ): { values: Array<[string, string, unknown]>; del: string[] } {
    const values: Array<[string, string, unknown]> = []
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
      if (value === undefined) del.push(fieldName(field))
      else values.push([fieldName(field), field, value])
    }
    return { values, del }
  }

  /** Refuses fields over maxBytes, counted as the script counts: the bytes of their JSON object text. */
  #sized(encoded: EncodedFields): EncodedFields {
    // '{', '}', a ',' between fields and a ':' in each (a merge adds the rest).
    let bytes = 1 + Math.max(1, encoded.set.size) + encoded.set.size
    for (const [field, text] of encoded.set) bytes += Buffer.byteLength(field) + Buffer.byteLength(text)
    if (bytes > this.options.maxBytes) throw new SessionTooLargeError(bytes, this.options.maxBytes)
    return encoded
  }

  /**
   * The live session with this id, or null. Connection trouble follows the failure policy; an
   * undecodable session reads as null and is reported, never thrown at the request. Without a
   * touch it is one GET: the key's TTL is the stored expiry, so a key that exists is live.
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
    let reply: string | Array<string | number> | null
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
    if (reply === null) return null
    if (typeof reply === 'string') return this.decode(handle, reply)
    // Rolled by this call: the value as read, then the new lastSeenAt and expiresAt.
    const stored = await this.decode(handle, String(reply[0]), Number(reply[1]), Number(reply[2]))
    if (stored) stored.rolled = true
    return stored
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

  /**
   * A stored value as a session; null (and a `decode-error` event) when this store cannot read it.
   * `lastSeenAt` and `expiresAt`, when given, replace the stored ones (a read that rolled them).
   */
  decode(
    handle: string,
    value: string,
    lastSeenAt?: number,
    expiresAt?: number,
  ): StoredSession | null | Promise<StoredSession | null> {
    const layout = parseLayout(value)
    if (!layout) return this.corrupt(handle, 'read', null)
    // A read that rolled hands new times; the stored ones must still have been numbers.
    if (lastSeenAt !== undefined && expiresAt !== undefined && Number.isFinite(layout.lastSeenAt)) {
      layout.lastSeenAt = lastSeenAt
      layout.expiresAt = expiresAt
    }
    return this.#build(handle, layout)
  }

  /** A session from its stored parts. With the JSON codec the data is one JSON.parse. */
  #build(handle: string, layout: Layout): StoredSession | null | Promise<StoredSession | null> {
    let field = '@m'
    try {
      const meta = layout.metaText ? (JSON.parse(layout.metaText) as SessionMeta) : {}
      field = '@u'
      const user = layout.userText ? (JSON.parse(layout.userText) as unknown) : null
      if (user !== null && typeof user !== 'string') throw new Error('the user id is not a string')
      field = '@c'
      const { createdAt, lastSeenAt, expiresAt, absoluteExpiresAt, version, idleTtlMs } = layout
      if (![createdAt, lastSeenAt, expiresAt, absoluteExpiresAt, version, idleTtlMs].every(Number.isFinite))
        throw new Error('a number field is not a number')
      field = '*'
      // JSON.parse defines own properties: a field named __proto__ stays data.
      const data = JSON.parse(layout.dataText) as Record<string, unknown>
      if (typeof data !== 'object' || data === null || Array.isArray(data))
        throw new Error('the data is not an object')
      const times = { createdAt, lastSeenAt, expiresAt, absoluteExpiresAt, version, idleTtlMs }
      if (this.options.jsonOnly) return new Stored(handle, user, data, layout, meta, times)
      return this.#decodeFields(handle, user, data, layout, meta, times)
    } catch (error) {
      emit({ package: 'session', event: 'decode-error', handle, field, error })
      return null
    }
  }

  /** With a codec of the user's: each field's stored string through codec.decode (maybe async). */
  async #decodeFields(
    handle: string,
    user: string | null,
    stored: Record<string, unknown>,
    layout: Layout,
    meta: SessionMeta,
    times: ConstructorParameters<typeof Stored>[5],
  ): Promise<StoredSession | null> {
    let field = '*'
    try {
      const entries: Array<[string, unknown]> = []
      for (const name in stored) {
        field = name
        const text = stored[name]
        if (typeof text !== 'string') throw new Error('not a string the codec wrote')
        const result = this.options.codec.decode(text)
        entries.push([name, result instanceof Promise ? await result : result])
      }
      // fromEntries defines own properties: a field named __proto__ stays data.
      return new Stored(handle, user, Object.fromEntries(entries), layout, meta, times)
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
      request.userId ? asciiJson(JSON.stringify(request.userId)) : '',
      request.meta === undefined || request.meta === '{}' ? '' : asciiJson(request.meta),
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
        return written(reply)
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

  /**
   * Saves a session loaded at `base` as a whole new value (saveScript): one short script, where a
   * merge rebuilds the value in Lua. `fields` are all of its data fields as encode() gave them
   * (stored name → encoded text, sized), in order. Answers null when the stored session is no longer that version (or no longer
   * live): the caller then merges with write(), which also reports what happened to it.
   */
  async saveLoaded(
    operation: string,
    id: string,
    base: SaveBase,
    fields: ReadonlyMap<string, string>,
    idleTtlMs?: number,
  ): Promise<Extract<WriteResult, { status: 'ok' }> | null> {
    const o = this.options
    // As session.write builds the data and its index (scripts.ts); encode() has sized these fields.
    let data = '{'
    let index = ''
    for (const [name, text] of fields) {
      if (index) {
        data += ','
        index += '.'
      }
      data += `${name}:${text}`
      index += `${Buffer.byteLength(name)}:${Buffer.byteLength(text)}`
    }
    const idle = idleTtlMs ?? base.idleTtlMs
    const { userText, metaText } = base
    const value = `S1${TIMES_PLACEHOLDER}${base.createdAt},${base.absoluteExpiresAt},${base.version + 1},${idle},${userText.length},${metaText.length},${index};${userText}${metaText}${data}}`
    const handle = SessionKeys.handle(id)
    let reply: Array<string | number>
    try {
      reply = await this.script(
        operation,
        saveScript,
        [o.keys.session(handle)],
        // The version alone could match a session created again under this id (at version 1) after
        // a tombstone expired: its creation time and cap tell them apart.
        [`${base.createdAt},${base.absoluteExpiresAt},${base.version},`, idleTtlMs ?? '', value],
      )
    } catch (error) {
      if (isWrongType(error)) return null
      throw error
    }
    return reply[0] === 'ok' ? written(reply) : null
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

  /**
   * Ends the session behind a handle and leaves a tombstone; answers its stored value, or null (a key
   * of another type is reported and left alone).
   */
  async destroyHandle(operation: string, handle: string, force = false): Promise<string | null> {
    const o = this.options
    try {
      return await this.script(
        operation,
        destroyScript,
        [o.keys.session(handle)],
        [o.tombstoneMs, force ? '1' : '0'],
      )
    } catch (error) {
      // A key of another type is no session of this store: reported, left as it is, and no session.
      if (isWrongType(error)) return this.corrupt(handle, operation, error)
      throw error
    }
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

/** Walks every master's session keys of this store (tombstones included), a batch at a time. */
export async function* scanSessionKeys(engine: SessionEngine): AsyncGenerator<string[]> {
  const { redis, keys, timeoutMs } = engine.options
  for await (const batch of scanKeys(redis, {
    match: keys.sessionPattern(),
    count: 500,
    timeoutMs,
    type: 'string',
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
          .call(operation, () => redis.get(key))
          .catch((error: unknown) => {
            if (isWrongType(error)) return null
            throw error
          }),
      ),
    )
    for (let i = 0; i < batch.length; i++) {
      const value = replies[i]
      // A tombstone is no session, and no decode error either.
      if (!value || value === 'T') continue
      const stored = await engine.decode(keys.handleOf(batch[i]!)!, value)
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
