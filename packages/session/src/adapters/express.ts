import { type Session, type SessionData, Store } from 'express-session'
import { clearSessions, scanSessions } from '../engine.js'
import { attempt, FrameworkSessions, type FrameworkStoreOptions, LoadedBase, settle } from './framework.js'

type Callback<T = void> = (error: unknown, value?: T) => void
type RequestLike = Parameters<Store['createSession']>[0]

export type ExpressSessionStoreOptions = FrameworkStoreOptions

/**
 * How a session was stored when it was loaded, kept on the loaded data and then on the Session that
 * express-session builds from it (createSession), under a symbol: invisible to for-in, JSON and
 * the app, and gone with the object. (Two WeakMaps did this before, at a fifth of the CPU in GC.)
 */
const BASE = Symbol('rp.session.base')

function baseOf(data: unknown): LoadedBase | undefined {
  return typeof data === 'object' && data !== null ? (data as { [BASE]?: LoadedBase })[BASE] : undefined
}

/**
 * An express-session store on @rp/session: `app.use(session({ store: new ExpressSessionStore({
 * sessions }), … }))`. Saves merge per field against the version the request loaded; a save or
 * touch for a session destroyed or expired meanwhile is a no-op, so logout cannot be undone by a
 * slow request. Emits `connect` / `disconnect` with the Redis connection (express-session's
 * storeReady). ids(), all() and length() see the SHA-256 handles: the ids are never stored.
 */
export class ExpressSessionStore extends Store {
  readonly #sessions: FrameworkSessions
  readonly #unwatch: () => void
  /** Whether a load rolls the idle expiry: the SessionStore's `rolling` (default true). */
  readonly #rolling: boolean

  constructor(options: ExpressSessionStoreOptions) {
    super()
    this.#sessions = new FrameworkSessions(options)
    this.#rolling = this.#sessions.engine.options.rolling
    this.#unwatch = this.#sessions.watchConnection(
      'session',
      () => this.emit('connect'),
      () => this.emit('disconnect'),
    )
  }

  override get(sid: string, callback: Callback<SessionData | null>): void {
    // Counted from before the read, so the touch skip never underestimates how old the roll is.
    const sentAt = performance.now()
    settle(
      attempt(() => this.#sessions.load('express.get', sid, this.#rolling)).then((stored) => {
        if (!stored) return null
        Object.defineProperty(stored.data, BASE, { value: new LoadedBase(sid, stored, sentAt) })
        return stored.data as unknown as SessionData
      }),
      callback,
    )
  }

  override createSession(req: RequestLike, data: SessionData): Session & SessionData {
    const base = baseOf(data)
    const created = super.createSession(req, data)
    if (base) Object.defineProperty(created, BASE, { value: base })
    return created
  }

  override set(sid: string, data: SessionData, callback?: Callback): void {
    settle(
      attempt(() => this.#sessions.save('express.set', sid, data, baseOf(data))),
      callback,
    )
  }

  override touch(sid: string, data: SessionData, callback?: Callback): void {
    settle(
      attempt(() => this.#sessions.touch('express.touch', sid, data, baseOf(data))),
      callback,
    )
  }

  override destroy(sid: string, callback?: Callback): void {
    settle(
      attempt(() => this.#sessions.destroy(sid)),
      callback,
    )
  }

  /** Every live session's data (a SCAN of every master). */
  override all(callback: Callback<SessionData[]>): void {
    settle(
      (async () => {
        const list: SessionData[] = []
        for await (const stored of scanSessions(this.#sessions.engine, 'express.all'))
          list.push(stored.data as unknown as SessionData)
        return list
      })(),
      callback,
    )
  }

  /** The handles (SHA-256 of the ids) of every live session. */
  ids(callback: Callback<string[]>): void {
    settle(
      (async () => {
        const list: string[] = []
        for await (const stored of scanSessions(this.#sessions.engine, 'express.ids'))
          list.push(stored.handle)
        return list
      })(),
      callback,
    )
  }

  override length(callback: Callback<number>): void {
    settle(
      (async () => {
        let count = 0
        for await (const _ of scanSessions(this.#sessions.engine, 'express.length')) count++
        return count
      })(),
      callback,
    )
  }

  /**
   * Deletes every live session of this store's prefix, and every user index. Tombstones stay until
   * they expire, so a request in flight still cannot bring a cleared session back.
   */
  override clear(callback?: Callback): void {
    settle(clearSessions(this.#sessions.engine), callback)
  }

  /** Stops following the Redis connection. The SessionStore and its client stay yours to close. */
  close(): void {
    this.#unwatch()
  }
}
