import {
  guarded,
  InvalidArgumentError,
  promised,
  publishEvent,
  requireKnownOptions,
  requireOptions,
} from '@rp/core/kit'
import type { SaveBase, SessionEngine, StoredSession } from '../engine.js'
import { MAX_TTL_MS, requireId } from '../options.js'
import { engineOf, type SessionStore } from '../store.js'

/**
 * How a framework session was stored when it was loaded: what a save diffs against. The per-field
 * encodings are split out of the read only when a save asks for them (most requests never save).
 */
export class LoadedBase {
  readonly sid: string
  /** The idle TTL the load rolled the expiry with, and when (performance.now()); null: no roll. */
  readonly rolled: { idleTtlMs: number; at: number } | null
  /** The version loaded (then the one this request last saved): what a whole-value save replaces. */
  saved: SaveBase | undefined
  #stored: Pick<StoredSession, 'encoded'> | null
  #fields: Map<string, string> | null = null

  /** `sentAt`: when the load was sent (performance.now()), no later than Redis rolled the key. */
  constructor(
    sid: string,
    stored: Pick<StoredSession, 'encoded'> & Partial<StoredSession> & { saveBase?: SaveBase },
    sentAt = performance.now(),
  ) {
    this.sid = sid
    this.#stored = stored
    this.saved = stored.saveBase
    // Only a load that really rolled: one that touchAfterMs held back leaves it to the touch.
    this.rolled =
      stored.rolled && stored.idleTtlMs !== undefined ? { idleTtlMs: stored.idleTtlMs, at: sentAt } : null
  }

  get fields(): Map<string, string> {
    if (!this.#fields) {
      this.#fields = this.#stored!.encoded
      this.#stored = null
    }
    return this.#fields
  }

  set fields(fields: Map<string, string>) {
    this.#fields = fields
    this.#stored = null
  }
}

/**
 * How far a cookie's TTL may differ from the one the load rolled with and still count as the same:
 * express-session recomputes `expires` from the app's clock, to the millisecond, during the request.
 */
const ROLL_TOLERANCE_MS = 1_000

interface CookieLike {
  expires?: unknown
  toJSON?: () => unknown
}

/** The options both adapters take. */
export interface FrameworkStoreOptions {
  /** The SessionStore whose options (prefix, TTLs, codec, failure policy, …) the adapter uses. */
  sessions: SessionStore
}

/**
 * What the express-session and @fastify/session stores share: both run the same scripts as
 * SessionStore. A save writes only the top-level fields that changed since the session was loaded
 * (a three-way merge per field), so two requests that change different fields both keep their
 * change; a save for a session that expired or was destroyed meanwhile writes nothing.
 */
export class FrameworkSessions {
  readonly engine: SessionEngine
  readonly store: SessionStore

  constructor(options: FrameworkStoreOptions) {
    const opts = requireOptions('options', options)
    requireKnownOptions('options', opts, ['sessions'])
    this.engine = engineOf(opts.sessions, 'sessions')
    this.store = opts.sessions
  }

  /**
   * The session as a framework wants it: the data, with the cookie's expiry set to the stored one.
   * With `touch`, the read also rolls the idle expiry, as SessionStore.get does.
   */
  async load(operation: string, sid: string, touch = false): Promise<StoredSession | null> {
    requireId('sid', sid)
    const stored = await this.engine.read(operation, sid, touch)
    if (!stored) return null
    const cookie = stored.data.cookie
    if (cookie && typeof cookie === 'object')
      (cookie as CookieLike).expires = new Date(stored.expiresAt).toISOString()
    return stored
  }

  /** Saves a framework session; `base` is how it was loaded (undefined for a new one). */
  async save(operation: string, sid: string, session: object, base: LoadedBase | undefined): Promise<void> {
    requireId('sid', sid)
    if (typeof session !== 'object' || session === null || Array.isArray(session))
      throw new InvalidArgumentError('session', 'must be a session object')
    const data = sessionFields(session)
    const known = base?.sid === sid ? base : undefined
    const encoding = this.engine.encode('session', data, known?.fields)
    const { set } = encoding instanceof Promise ? await encoding : encoding
    const idleTtlMs = ttlFromCookie(data.cookie)
    if (known) {
      // The common case, one short script: the version loaded is still the stored one, so this
      // request's session is the merge, and it replaces the value whole.
      const saved = known.saved
      if (saved) {
        const result = await this.engine.saveLoaded(operation, sid, saved, set, idleTtlMs)
        if (result) {
          known.fields = set
          known.saved = { ...saved, version: result.version, idleTtlMs: idleTtlMs ?? saved.idleTtlMs }
          return
        }
      }
      const changed = new Map<string, string>()
      for (const [field, text] of set) if (known.fields.get(field) !== text) changed.set(field, text)
      const del = Array.from(known.fields, ([field]) => field).filter((field) => !set.has(field))
      const result = await this.engine.write(operation, sid, {
        mode: 'merge',
        set: changed,
        del,
        touch: true,
        ...(idleTtlMs === undefined ? {} : { idleTtlMs }),
      })
      if (result.status === 'ok') known.fields = set
      // Merged into another version: the next save of this request merges too.
      known.saved = undefined
      return
    }
    await this.engine.write(operation, sid, {
      mode: 'upsert',
      set,
      touch: true,
      ...(idleTtlMs === undefined ? {} : { idleTtlMs }),
    })
  }

  /**
   * Rolls the idle expiry to the cookie's. Nothing to do when the load of this very request rolled
   * it already and the cookie now ends within ROLL_TOLERANCE_MS of where that roll put the key: a
   * quick request that changed nothing then costs one round trip, not two. A slow one (or a cookie
   * with another TTL) is touched, so the key never ends more than the tolerance before the cookie.
   */
  async touch(
    operation: string,
    sid: string,
    session: { cookie?: unknown } | undefined,
    base?: LoadedBase,
  ): Promise<void> {
    requireId('sid', sid)
    const ttl = ttlFromCookie(session?.cookie)
    const rolled = base?.sid === sid ? base.rolled : null
    if (rolled) {
      // Where the cookie ends, less where the roll put the key: the time since, plus the TTL change.
      const gap = performance.now() - rolled.at + (ttl === undefined ? 0 : ttl - rolled.idleTtlMs)
      if (Math.abs(gap) <= ROLL_TOLERANCE_MS) return
    }
    await this.engine.touch(operation, sid, ttl)
  }

  async destroy(sid: string): Promise<void> {
    requireId('sid', sid)
    await this.store.destroy(sid)
  }

  /** Follows the Redis connection, so a framework can tell when its store is usable. */
  watchConnection(pkg: string, onConnect: () => void, onDisconnect: () => void): () => void {
    const redis = this.engine.options.redis
    const ready = guarded(pkg, 'connect', onConnect)
    const gone = guarded(pkg, 'disconnect', onDisconnect)
    redis.on('ready', ready)
    redis.on('close', gone)
    redis.on('end', gone)
    return () => {
      redis.off('ready', ready)
      redis.off('close', gone)
      redis.off('end', gone)
    }
  }
}

/**
 * A framework session's own data fields: its own enumerable properties, methods left out. A value
 * with toJSON (express-session's Cookie) is what toJSON returns, as JSON would store it.
 */
export function sessionFields(session: object): Record<string, unknown> {
  const data: Record<string, unknown> = {}
  for (const field in session) {
    if (!Object.hasOwn(session, field)) continue
    const value = (session as Record<string, unknown>)[field]
    if (typeof value === 'function') continue
    const toJSON = (value as { toJSON?: unknown } | null)?.toJSON
    data[field] = typeof toJSON === 'function' && !(value instanceof Date) ? toJSON.call(value, field) : value
  }
  return data
}

/**
 * The idle TTL a framework cookie asks for: the time left until its `expires`, so the key's TTL and
 * the cookie end together. Only a duration crosses from the app's clock; the script adds it to
 * the server's. undefined (the store's idleTtlMs) for a browser-session cookie.
 */
export function ttlFromCookie(cookie: unknown): number | undefined {
  if (!cookie || typeof cookie !== 'object') return undefined
  const expires = (cookie as CookieLike).expires
  if (expires === undefined || expires === null || expires === false) return undefined
  const at = expires instanceof Date ? expires.getTime() : new Date(String(expires)).getTime()
  if (!Number.isFinite(at)) return undefined
  return Math.min(Math.max(1, at - Date.now()), MAX_TTL_MS)
}

/**
 * Calls a Node-style callback with a promise's outcome, exactly once. The callback is the
 * framework's (or the app's): what it throws becomes an rp:event `callback-error`, never an
 * unhandled rejection or an uncaught exception from inside this package.
 */
export function settle<T>(
  promise: Promise<T>,
  callback: ((error: unknown, value?: T) => void) | undefined,
): void {
  promise.then(
    (value) => deliver(callback, null, value),
    (error: unknown) => deliver(callback, error),
  )
}

function deliver<T>(
  callback: ((error: unknown, value?: T) => void) | undefined,
  error: unknown,
  value?: T,
): void {
  if (callback === undefined) return
  try {
    callback(error, value)
  } catch (thrown) {
    publishEvent({ package: 'session', event: 'callback-error', callback: 'store callback', error: thrown })
  }
}

/** Runs `fn` so that a synchronous throw (a bad argument) still reaches the callback. */
export function attempt<T>(fn: () => Promise<T>): Promise<T> {
  return promised(fn)
}
