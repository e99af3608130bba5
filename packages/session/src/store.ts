import {
  InvalidArgumentError,
  promised,
  RpError,
  requireFunction,
  requireJsonValue,
  requireKnownOptions,
  requireOptions,
  requirePositiveInteger,
} from '@rp/core/kit'
import { nanoid } from 'nanoid'
import {
  type SessionEngine as Engine,
  isWrongType,
  parseLayout,
  SessionEngine,
  type StoredSession,
  userIdOf,
  type WriteResult,
} from './engine.js'
import { SessionConflictError } from './errors.js'
import { MAX_ID_LENGTH, requireId, resolveSessionOptions, type SessionStoreOptions } from './options.js'
import type { Session, SessionDevice, SessionMeta } from './session.js'
import { SessionKeys } from './session-keys.js'

export interface SessionCreateOptions {
  /** Device details (ip, user agent, …), JSON; listForUser shows them. */
  meta?: SessionMeta
}

export interface SessionUpdateOptions {
  /**
   * Compare-and-set: write only if the session is still at this version, else reject with
   * SessionConflictError. Without it, a patch merges per field and an updater function is retried
   * on a race (up to 5 times).
   */
  expectedVersion?: number
}

export interface DestroyAllOptions {
  /** A session id to keep (the device the user is on). */
  except?: string
}

/** An updater: gets a copy of the data, returns the whole next data. May be async. */
export type SessionUpdater<Data> = (data: Data) => Data | Promise<Data>

/** How many times an updater runs before a persistent race becomes a SessionConflictError. */
const UPDATER_ATTEMPTS = 5
/** 32 nanoid characters: 192 random bits from the CSPRNG. */
const ID_LENGTH = 32

const engines = new WeakMap<SessionStore, Engine>()
/** @internal The engine behind a store, for the framework adapters of this package. */
export function engineOf(store: SessionStore, argument = 'sessions'): Engine {
  const engine = typeof store === 'object' && store !== null ? engines.get(store) : undefined
  if (!engine) throw new InvalidArgumentError(argument, 'must be a SessionStore from @rp/session')
  return engine
}

function requireData(name: string, value: unknown): Record<string, unknown> {
  if (typeof value !== 'object' || value === null || Array.isArray(value))
    throw new InvalidArgumentError(name, 'must be a plain object')
  const proto = Object.getPrototypeOf(value)
  if (proto !== Object.prototype && proto !== null)
    throw new InvalidArgumentError(name, 'must be a plain object')
  return value as Record<string, unknown>
}

function encodeMeta(meta: unknown): string {
  if (meta === undefined) return '{}'
  requireData('meta', meta)
  requireJsonValue('meta', meta)
  const text = JSON.stringify(meta)
  if (text.length > 4_096) throw new InvalidArgumentError('meta', 'must encode to at most 4096 characters')
  return text
}

/**
 * Sessions in Redis that lose no update and cannot be brought back after logout. Every method is
 * one round trip to the session's key, except create, destroy and regenerate of a user's session,
 * which also maintain the user's index (a key in another slot), in an order that can only leave an
 * index entry pointing at nothing.
 */
export class SessionStore<Data extends object = Record<string, unknown>> {
  readonly #engine: SessionEngine

  /** @throws InvalidArgumentError for a bad or unknown option. */
  constructor(options: SessionStoreOptions) {
    this.#engine = new SessionEngine(resolveSessionOptions(options))
    engines.set(this as SessionStore, this.#engine)
  }

  /** Starts a session for a user: a new id of 192 random bits. */
  create(userId: string, data: Data, options?: SessionCreateOptions): Promise<Session<Data>> {
    return promised(async () => {
      requireId('userId', userId)
      const opts = requireOptions('options', options)
      requireKnownOptions('options', opts, ['meta'])
      const meta = encodeMeta(opts.meta)
      const encoding = this.#engine.encode('data', requireData('data', data))
      const { set } = encoding instanceof Promise ? await encoding : encoding
      for (let attempt = 1; ; attempt++) {
        const id = nanoid(ID_LENGTH)
        const handle = SessionKeys.handle(id)
        const absoluteExpiresAt = await this.#indexNew(userId, handle)
        const result = await this.#engine.write('create', id, {
          mode: 'create',
          set,
          touch: false,
          userId,
          meta,
          absoluteExpiresAt,
          // The index fixed the absolute expiry on the server clock a moment ago: the session was
          // created then, so absoluteExpiresAt - createdAt is exactly absoluteTtlMs.
          createdAt: absoluteExpiresAt - this.#engine.options.absoluteTtlMs,
        })
        // 'gone': a destroyAllForUser read the index entry and tombstoned the id first; take another.
        if (result.status !== 'ok') {
          if (attempt < 3) continue
          throw new RpError(
            'RP_SESSION_CREATE',
            `create: the new session could not be written (${result.status})`,
          )
        }
        return this.#session(id, userId, data, JSON.parse(meta), result)
      }
    })
  }

  /**
   * The live session, or null (never existed, expired, destroyed, or unreadable). With `rolling`
   * (the default) it also moves the idle expiry, in the same round trip.
   */
  get(id: string): Promise<Session<Data> | null> {
    return promised(async () => {
      requireId('id', id)
      const stored = await this.#engine.read('get', id, this.#engine.options.rolling)
      return stored ? this.#fromStored(id, stored) : null
    })
  }

  /**
   * Changes a live session. A patch object merges per top-level field in one round trip (a field
   * set to undefined is removed), so concurrent updates of different fields all survive. An
   * updater function replaces the data with what it returns, as a compare-and-set.
   * Resolves to the new version, or null when there is no live session (nothing was written).
   */
  update(
    id: string,
    change: Partial<Data> | SessionUpdater<Data>,
    options?: SessionUpdateOptions,
  ): Promise<number | null> {
    return promised(async () => {
      requireId('id', id)
      const opts = requireOptions('options', options)
      requireKnownOptions('options', opts, ['expectedVersion'])
      const expected =
        opts.expectedVersion === undefined
          ? undefined
          : requirePositiveInteger('expectedVersion', opts.expectedVersion)
      if (typeof change === 'function')
        return this.#updateWith(id, requireFunction('change', change), expected)
      // Not awaited when it is ready: a get called after this update must not overtake it.
      const encoding = this.#engine.encode('change', requireData('change', change))
      const { set, del } = encoding instanceof Promise ? await encoding : encoding
      const result = await this.#engine.write('update', id, {
        mode: 'merge',
        set,
        del,
        touch: this.#engine.options.rolling,
        ...(expected === undefined ? {} : { expectedVersion: expected }),
      })
      return result.status === 'ok' ? result.version : null
    })
  }

  /**
   * Moves the idle expiry (never past absoluteExpiresAt). Resolves to the new expiresAt, or null
   * when there is no live session: a touch never revives an expired or destroyed one.
   */
  touch(id: string): Promise<number | null> {
    return promised(async () => {
      requireId('id', id)
      return this.#engine.touch('touch', id)
    })
  }

  /**
   * A new id for the same session (call it at login, against session fixation). The old id ends
   * at once and stays refused for `tombstoneMs`. The data, user, meta, createdAt and absolute
   * expiry carry over. Resolves to null when there was no live session.
   */
  regenerate(id: string): Promise<Session<Data> | null> {
    return promised(async () => {
      requireId('id', id)
      const engine = this.#engine
      const oldHandle = SessionKeys.handle(id)
      const raw = await engine.destroyHandle('regenerate', oldHandle)
      if (raw === null) return null
      const stored = await engine.decode(oldHandle, raw)
      if (!stored) return null
      const next = nanoid(ID_LENGTH)
      const handle = SessionKeys.handle(next)
      if (stored.userId) await engine.indexAdd('regenerate', stored.userId, handle, stored.absoluteExpiresAt)
      const result = await engine.write('regenerate', next, {
        mode: 'create',
        set: stored.encoded,
        touch: false,
        userId: stored.userId,
        meta: JSON.stringify(stored.meta),
        absoluteExpiresAt: stored.absoluteExpiresAt,
        createdAt: stored.createdAt,
        idleTtlMs: stored.idleTtlMs,
      })
      if (stored.userId) await engine.forget('regenerate', stored.userId, [oldHandle])
      // 'missing': the absolute expiry passed meanwhile. 'gone': a destroyAllForUser found the new
      // handle in the index and ended it; the old id was already dead, so the logout came after
      // this regenerate and must win. No retry with another id.
      if (result.status !== 'ok') return null
      return this.#session(next, stored.userId, stored.data as Data, stored.meta, result)
    })
  }

  /**
   * Ends a session. Its id stays refused for `tombstoneMs`, so a request still in flight cannot
   * write it back. Resolves to whether a live session ended.
   */
  destroy(id: string): Promise<boolean> {
    return promised(async () => {
      requireId('id', id)
      const handle = SessionKeys.handle(id)
      const value = await this.#engine.destroyHandle('destroy', handle)
      const userId = value === null ? '' : userIdOf(value)
      if (userId) await this.#engine.forget('destroy', userId, [handle])
      return value !== null
    })
  }

  /**
   * The user's live sessions, most recently seen first. Works on Cluster: one call per session,
   * 100 at a time. Entries of destroyed sessions leave the index here; entries that point at
   * nothing are left alone (the session may be being created), and go at their absolute expiry.
   */
  listForUser(userId: string): Promise<SessionDevice[]> {
    return promised(async () => {
      requireId('userId', userId)
      const entries = await this.#engine.indexRemove('listForUser', userId, [])
      const handles = entries.filter((_, i) => i % 2 === 0)
      const devices: SessionDevice[] = []
      const dead: string[] = []
      for (let i = 0; i < handles.length; i += 100) {
        await Promise.all(
          handles.slice(i, i + 100).map(async (handle) => {
            const device = await this.#device(handle)
            if (device === 'destroyed') dead.push(handle)
            else if (device) devices.push(device)
          }),
        )
      }
      if (dead.length) await this.#engine.forget('listForUser', userId, dead)
      return devices.sort((a, b) => b.lastSeenAt - a.lastSeenAt)
    })
  }

  /**
   * Ends every session of a user ("log out everywhere"), except `except`. Each handle in the index
   * is tombstoned, even one whose session is still being created, before its index entry goes.
   * Resolves to how many live sessions ended.
   */
  destroyAllForUser(userId: string, options?: DestroyAllOptions): Promise<number> {
    return promised(async () => {
      requireId('userId', userId)
      const opts = requireOptions('options', options)
      requireKnownOptions('options', opts, ['except'])
      const keep = opts.except === undefined ? null : SessionKeys.handle(requireId('except', opts.except))
      const entries = await this.#engine.indexRemove('destroyAllForUser', userId, [])
      const handles = entries.filter((h, i) => i % 2 === 0 && h !== keep)
      let ended = 0
      for (let i = 0; i < handles.length; i += 100) {
        const replies = await Promise.all(
          handles
            .slice(i, i + 100)
            .map((handle) => this.#engine.destroyHandle('destroyAllForUser', handle, true)),
        )
        ended += replies.filter((r) => r !== null).length
      }
      await this.#engine.forget('destroyAllForUser', userId, handles)
      return ended
    })
  }

  async #updateWith(
    id: string,
    updater: SessionUpdater<Data>,
    expected: number | undefined,
  ): Promise<number | null> {
    const engine = this.#engine
    for (let attempt = 1; ; attempt++) {
      const stored = await engine.read('update', id, false, undefined, false)
      if (!stored) return null
      if (expected !== undefined && stored.version !== expected)
        throw new SessionConflictError(expected, stored.version)
      const next = await updater(structuredClone(stored.data) as Data)
      const { set } = await engine.encode('change', requireData('change()', next))
      try {
        const result = await engine.write('update', id, {
          mode: 'replace',
          set,
          expectedVersion: stored.version,
          touch: engine.options.rolling,
        })
        return result.status === 'ok' ? result.version : null
      } catch (error) {
        if (!(error instanceof SessionConflictError) || expected !== undefined || attempt >= UPDATER_ATTEMPTS)
          throw error
      }
    }
  }

  /** Indexes a new handle under its user before the session exists; answers its absolute expiry. */
  async #indexNew(userId: string, handle: string): Promise<number> {
    // The index script fixes the absolute expiry on the server clock; the session gets the same
    // number, so the index entry and the session always end together.
    return this.#engine.indexAdd('create', userId, handle)
  }

  async #device(handle: string): Promise<SessionDevice | 'destroyed' | null> {
    const o = this.#engine.options
    const value = await this.#engine
      .call('listForUser', () => o.redis.get(o.keys.session(handle)))
      .catch((error: unknown) => {
        // One unreadable key (another type) must not hide the user's other sessions.
        if (isWrongType(error)) return null
        throw error
      })
    if (value === 'T') return 'destroyed'
    const layout = value === null ? null : parseLayout(value)
    if (!layout) return null
    const { createdAt, lastSeenAt, expiresAt, absoluteExpiresAt } = layout
    if (![createdAt, lastSeenAt, expiresAt, absoluteExpiresAt].every(Number.isFinite)) return null
    let meta: SessionMeta = {}
    try {
      if (layout.metaText) meta = JSON.parse(layout.metaText) as SessionMeta
    } catch {}
    return { handle, idHint: handle.slice(0, 8), createdAt, lastSeenAt, expiresAt, absoluteExpiresAt, meta }
  }

  #fromStored(id: string, s: StoredSession): Session<Data> {
    return {
      id,
      userId: s.userId,
      data: s.data as Data,
      meta: s.meta,
      createdAt: s.createdAt,
      lastSeenAt: s.lastSeenAt,
      expiresAt: s.expiresAt,
      absoluteExpiresAt: s.absoluteExpiresAt,
      version: s.version,
    }
  }

  #session(
    id: string,
    userId: string | null,
    data: Data,
    meta: SessionMeta,
    result: Extract<WriteResult, { status: 'ok' }>,
  ): Session<Data> {
    return {
      id,
      userId,
      data,
      meta,
      createdAt: result.createdAt,
      lastSeenAt: result.now,
      expiresAt: result.expiresAt,
      absoluteExpiresAt: result.absoluteExpiresAt,
      version: result.version,
    }
  }
}

export { MAX_ID_LENGTH }
