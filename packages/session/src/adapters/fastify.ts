import {
  attempt,
  FrameworkSessions,
  type FrameworkStoreOptions,
  LoadedBase,
  sessionFields,
  settle,
} from './framework.js'

// @fastify/session types its callbacks with its own Session class; the store hands back plain data.
// biome-ignore lint/suspicious/noExplicitAny: matches @fastify/session's callback types without importing them.
type Callback = (error?: any, value?: any) => void

export type FastifySessionStoreOptions = FrameworkStoreOptions

/** A loaded session not yet saved: kept at most this long (a request in flight longer saves all fields). */
const BASE_TTL_MS = 10 * 60_000
/** Loads of one session id remembered at once; more concurrent requests of one id share the oldest. */
const BASES_PER_ID = 16

/**
 * A @fastify/session store on @rp/session: `fastify.register(fastifySession, { store: new
 * FastifySessionStore({ sessions }), … })`. It runs the same scripts as SessionStore. A save
 * merges per field against the load it came from, so concurrent requests that change different
 * fields keep both changes, and a save for a session destroyed or expired meanwhile writes
 * nothing. @fastify/session gives a store no handle on the request, so each load of an id is kept
 * until a save consumes it, and a save is matched to the load its data differs least from.
 */
export class FastifySessionStore {
  readonly #sessions: FrameworkSessions
  readonly #pending = new Map<string, Array<{ base: LoadedBase; at: number }>>()
  #swept = 0

  constructor(options: FastifySessionStoreOptions) {
    this.#sessions = new FrameworkSessions(options)
  }

  get(sessionId: string, callback: Callback): void {
    settle(
      attempt(() => this.#sessions.load('fastify.get', sessionId)).then((stored) => {
        if (!stored) return null
        this.#remember(sessionId, { base: new LoadedBase(sessionId, stored), at: performance.now() })
        return stored.data
      }),
      callback,
    )
  }

  set(sessionId: string, session: object, callback: Callback): void {
    settle(
      attempt(async () => {
        const base = await this.#take(sessionId, session)
        await this.#sessions.save('fastify.set', sessionId, session, base)
      }),
      callback,
    )
  }

  destroy(sessionId: string, callback: Callback): void {
    this.#pending.delete(sessionId)
    settle(
      attempt(() => this.#sessions.destroy(sessionId)),
      callback,
    )
  }

  #remember(sid: string, base: { base: LoadedBase; at: number }): void {
    this.#sweep()
    const list = this.#pending.get(sid) ?? []
    list.push(base)
    if (list.length > BASES_PER_ID) list.shift()
    this.#pending.set(sid, list)
  }

  /**
   * The load a save came from: the one whose stored fields its data differs from least (a request
   * changes few fields). Without one (a new session, or a request that held its load longer than
   * BASE_TTL_MS), the save writes every field and creates the session if it is missing: so a
   * request held over 10 minutes can write back a session that expired meanwhile, or one
   * destroyed longer ago than tombstoneMs. The README says so.
   */
  async #take(sid: string, session: object): Promise<LoadedBase | undefined> {
    const list = this.#pending.get(sid)
    if (!list?.length || typeof session !== 'object' || session === null) return undefined
    const { set } = await this.#sessions.engine.encode('session', sessionFields(session))
    let best = 0
    let bestDiff = Number.POSITIVE_INFINITY
    for (const [i, { base }] of list.entries()) {
      let diff = 0
      for (const [field, text] of set) if (base.fields.get(field) !== text) diff++
      for (const [field] of base.fields) if (!set.has(field)) diff++
      if (diff < bestDiff) {
        best = i
        bestDiff = diff
      }
    }
    const [taken] = list.splice(best, 1)
    if (list.length === 0) this.#pending.delete(sid)
    return taken?.base
  }

  // Drops loads older than BASE_TTL_MS, at most once a minute: a request that never saves (most
  // do not) must not leave its load behind for ever.
  #sweep(): void {
    const now = performance.now()
    if (now - this.#swept < 60_000) return
    this.#swept = now
    const oldest = now - BASE_TTL_MS
    for (const [sid, list] of this.#pending) {
      const kept = list.filter((entry) => entry.at >= oldest)
      if (kept.length === 0) this.#pending.delete(sid)
      else if (kept.length !== list.length) this.#pending.set(sid, kept)
    }
  }
}
