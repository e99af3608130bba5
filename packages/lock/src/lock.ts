import { Hold, type ReleaseOutcome } from '@rp/core/kit'

/** @internal What a Lock asks its manager for; built by LockManager, never by users. */
export interface LockContext {
  call<T>(operation: string, work: () => Promise<T>): Promise<T>
  release(resource: string, owner: string): Promise<ReleaseOutcome>
  extend(resource: string, owner: string, ttlMs: number): Promise<number>
  isHeld(resource: string, owner: string): Promise<boolean>
}

/**
 * A held lock: core's Hold (`id`, `expiresAt`, `release()`, `extend(ttlMs?)`, `await using`) plus
 * its resource and fencing token. `token` is strictly increasing per resource: pass it to the
 * resource you protect, which refuses a write carrying a token smaller than one it has seen.
 */
export class Lock extends Hold {
  readonly resource: string
  readonly token: number
  /** The owner id stored in Redis (yours, if you passed `owner` for reentrancy); same as `id`. */
  readonly owner: string
  readonly #context: LockContext

  /** @internal Created by LockManager. */
  constructor(
    context: LockContext,
    init: {
      resource: string
      owner: string
      token: number
      expiresAt: number
      sentAt: number
      ttlMs: number
    },
  ) {
    super({
      id: init.owner,
      expiresAt: init.expiresAt,
      ttlMs: init.ttlMs,
      sentAt: init.sentAt,
      package: 'lock',
      name: 'lock',
      call: context.call,
      release: () => context.release(init.resource, init.owner),
      extend: (ttlMs) => context.extend(init.resource, init.owner, ttlMs),
    })
    this.#context = context
    this.resource = init.resource
    this.owner = init.owner
    this.token = init.token
  }

  /** Asks Redis whether this owner still holds the lock. */
  async isHeld(): Promise<boolean> {
    if (this.released) return false
    return this.#context.call('lock.isHeld', () => this.#context.isHeld(this.resource, this.owner))
  }
}
