import {
  InvalidArgumentError,
  instrument,
  isConnectionError,
  RedisGuard,
  RpError,
  requireJsonValue,
  scanKeys,
  TimeoutError,
} from '@rp/core/kit'
import { SessionConflictError, SessionTooLargeError } from './errors.js'
import { emit } from './events.js'
import { MAX_FIELDS, type ResolvedSessionOptions } from './options.js'
import { destroyScript, getScript, indexScript, touchScript, writeScript } from './scripts.js'
import type { SessionMeta } from './session.js'
import { SessionKeys } from './session-keys.js'

/** A stored session, decoded: what get() and the framework adapters build their answers from. */
export interface StoredSession {
  handle: string
  userId: string | null
  data: Record<string, unknown>
  /** The encoded fields as stored, by data field name: the base a framework adapter diffs against. */
  encoded: Map<string, string>
  meta: SessionMeta
  createdAt: number
  lastSeenAt: number
  expiresAt: number
  absoluteExpiresAt: number
  version: number
  idleTtlMs: number
}

export type WriteMode = 'create' | 'upsert' | 'merge' | 'replace'

export interface WriteRequest {
  mode: WriteMode
  /** Encoded data fields to set, by field name. */
  set: ReadonlyMap<string, string>
  /** Data fields to remove. */
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

const FIELD = '.'

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
    this.#guard = new RedisGuard(options.redis, options.timeoutMs)
  }

  call<T>(operation: string, work: () => Promise<T>): Promise<T> {
    return instrument({ package: 'session', operation }, () => this.#guard.run(operation, work))
  }

  /** Encodes a data object's top-level fields; undefined values are deletions. */
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
      const value = data[field]
      if (value === undefined) {
        del.push(field)
        continue
      }
      if (jsonOnly) requireJsonValue(`${argument}.${field}`, value)
      let text: unknown
      try {
        text = await codec.encode(value)
      } catch (error) {
        throw new InvalidArgumentError(
          `${argument}.${field}`,
          `the codec could not encode it: ${String(error)}`,
        )
      }
      if (typeof text !== 'string')
        throw new InvalidArgumentError('codec.encode', `must return a string, got ${typeof text}`)
      set.set(field, text)
    }
    let bytes = 0
    for (const text of set.values()) bytes += Buffer.byteLength(text)
    if (bytes > this.options.maxBytes) throw new SessionTooLargeError(bytes, this.options.maxBytes)
    return { set, del }
  }

  /**
   * The live session with this id, or null. Connection trouble follows the failure policy; an
   * undecodable session reads as null and is reported, never thrown at the request.
   */
  async read(
    operation: string,
    id: string,
    touch: boolean,
    idleTtlMs?: number,
  ): Promise<StoredSession | null> {
    const handle = SessionKeys.handle(id)
    const { keys, touchAfterMs } = this.options
    let raw: string[] | null
    try {
      raw = await this.call(operation, () =>
        getScript.run(
          this.options.redis,
          [keys.session(handle)],
          [touch ? '1' : '0', touchAfterMs, idleTtlMs ?? ''],
        ),
      )
    } catch (error) {
      if (
        this.options.failure === 'anonymous' &&
        (isConnectionError(error) || error instanceof TimeoutError)
      ) {
        emit({ package: 'session', event: 'failure-policy', operation, error })
        return null
      }
      throw error
    }
    return raw ? this.decode(handle, raw) : null
  }

  async decode(handle: string, raw: readonly string[]): Promise<StoredSession | null> {
    const fields = new Map<string, string>()
    for (let i = 0; i + 1 < raw.length; i += 2) fields.set(raw[i]!, raw[i + 1]!)
    const entries: Array<[string, unknown]> = []
    const encoded = new Map<string, string>()
    let field = '@m'
    try {
      const meta = JSON.parse(fields.get('@m') ?? '{}') as SessionMeta
      for (const [name, text] of fields) {
        if (!name.startsWith(FIELD)) continue
        field = name.slice(1)
        encoded.set(field, text)
        entries.push([field, await this.options.codec.decode(text)])
      }
      // fromEntries defines own properties: a field named __proto__ stays data.
      const data = Object.fromEntries(entries)
      const number = (name: string) => {
        const n = Number(fields.get(name))
        if (!Number.isFinite(n)) throw new Error(`field ${name} is not a number`)
        return n
      }
      const userId = fields.get('@u')
      return {
        handle,
        userId: userId ? userId : null,
        data,
        encoded,
        meta,
        createdAt: number('@c'),
        lastSeenAt: number('@l'),
        expiresAt: number('@e'),
        absoluteExpiresAt: number('@a'),
        version: number('@v'),
        idleTtlMs: number('@i'),
      }
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
    ]
    for (const [field, text] of request.set) args.push(FIELD + field, text)
    for (const field of request.del ?? []) args.push(FIELD + field)
    const reply = await this.call(operation, () => writeScript.run(o.redis, [o.keys.session(handle)], args))
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

  touch(operation: string, id: string, idleTtlMs?: number): Promise<number | null> {
    const o = this.options
    return this.call(operation, () =>
      touchScript.run(o.redis, [o.keys.session(SessionKeys.handle(id))], [o.touchAfterMs, idleTtlMs ?? '']),
    )
  }

  /** Ends the session behind a handle and leaves a tombstone; answers the stored fields, or null. */
  destroyHandle(operation: string, handle: string, withFields: boolean): Promise<string | string[] | null> {
    const o = this.options
    return this.call(operation, () =>
      destroyScript.run(o.redis, [o.keys.session(handle)], [o.tombstoneMs, withFields ? '1' : '0']),
    )
  }

  /** Adds a handle to, or removes handles from, a user's index; answers [handle, expiry, …] left. */
  index(operation: string, userId: string, op: 'add' | 'remove', args: ReadonlyArray<string | number>) {
    const o = this.options
    return this.call(operation, () => indexScript.run(o.redis, [o.keys.user(userId)], [op, ...args]))
  }

  /** Index removals are tidying: a failure leaves an entry that listForUser and the trim drop later. */
  async forget(operation: string, userId: string, handles: readonly string[]): Promise<void> {
    for (let i = 0; i < handles.length; i += 500) {
      await this.index(operation, userId, 'remove', handles.slice(i, i + 500)).catch((error: unknown) =>
        emit({ package: 'session', event: 'failure-policy', operation: `${operation}.index`, error }),
      )
    }
  }
}

/** Walks every master's session keys of this store (tombstones included), a batch at a time. */
export async function* scanSessionKeys(engine: SessionEngine): AsyncGenerator<string[]> {
  const { redis, keys, timeoutMs } = engine.options
  for await (const batch of scanKeys(redis, { match: keys.sessionPattern(), count: 500, timeoutMs })) {
    const owned = batch.filter((key) => keys.handleOf(key) !== null)
    if (owned.length) yield owned
  }
}

/** Every live session of the store, decoded, with its handle (the ids are never stored). */
export async function* scanSessions(engine: SessionEngine, operation: string): AsyncGenerator<StoredSession> {
  const { redis, keys } = engine.options
  for await (const batch of scanSessionKeys(engine)) {
    const replies = await Promise.all(batch.map((key) => engine.call(operation, () => redis.hgetall(key))))
    for (let i = 0; i < batch.length; i++) {
      const fields = replies[i]!
      if (!fields['@e']) continue
      const flat: string[] = []
      for (const name in fields) flat.push(name, fields[name]!)
      const stored = await engine.decode(keys.handleOf(batch[i]!)!, flat)
      if (stored) yield stored
    }
  }
}
