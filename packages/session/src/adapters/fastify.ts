import { FrameworkSessions, type FrameworkStoreOptions, type LoadedBase, settle } from './framework.js'

// @fastify/session types its callbacks with its own Session class; the store hands back plain data.
// biome-ignore lint/suspicious/noExplicitAny: matches @fastify/session's callback types without importing them.
type Callback<_T = void> = (error?: any, value?: any) => void

export type FastifySessionStoreOptions = FrameworkStoreOptions

/** Loaded bases kept per session id, oldest dropped first. */
const MAX_BASES = 10_000

/**
 * A @fastify/session store on @rp/session: `fastify.register(fastifySession, { store: new
 * FastifySessionStore({ sessions }), … })`. It runs the same scripts as SessionStore. A save merges
 * per field against the session as this process last loaded it (@fastify/session gives a store no
 * handle on the request, so the base is kept per id); a save for a session destroyed or expired
 * meanwhile writes nothing.
 */
export class FastifySessionStore {
  readonly #sessions: FrameworkSessions
  readonly #bases = new Map<string, LoadedBase>()

  constructor(options: FastifySessionStoreOptions) {
    this.#sessions = new FrameworkSessions('session', options)
  }

  get(sessionId: string, callback: Callback<Record<string, unknown> | null>): void {
    settle(
      this.#sessions.load('fastify.get', sessionId).then((stored) => {
        if (!stored) {
          this.#bases.delete(sessionId)
          return null
        }
        this.#bases.delete(sessionId)
        this.#bases.set(sessionId, { sid: sessionId, encoded: stored.encoded })
        if (this.#bases.size > MAX_BASES) this.#bases.delete(this.#bases.keys().next().value!)
        return stored.data
      }),
      callback,
    )
  }

  set(sessionId: string, session: object, callback: Callback): void {
    settle(this.#sessions.save('fastify.set', sessionId, session, this.#bases.get(sessionId)), callback)
  }

  destroy(sessionId: string, callback: Callback): void {
    this.#bases.delete(sessionId)
    settle(this.#sessions.destroy(sessionId), callback)
  }
}
