import { instrument } from '@rp/core'
import type { LockManagerInternals } from './lock-manager.js'
import { extendScript, releaseScript } from './scripts.js'

export type ReleaseOutcome = 'released' | 'expired' | 'not-owner'

/** A held lock. `token` is the fencing token: pass it to the resource you protect. */
export class Lock {
  readonly resource: string
  /** Strictly increasing per resource: a write carrying a smaller token than one already seen is stale. */
  readonly token: number
  /** The owner id stored in Redis (yours, if you passed `owner` for reentrancy). */
  readonly owner: string
  #expiresAt: number
  #validUntil: number
  #outcome: Promise<ReleaseOutcome> | null = null
  readonly #manager: LockManagerInternals

  /** @internal Created by LockManager; `sentAt` is when the acquire that won was sent. */
  constructor(
    manager: LockManagerInternals,
    resource: string,
    owner: string,
    token: number,
    expiresAt: number,
    sentAt: number,
    ttlMs: number,
  ) {
    this.#manager = manager
    this.resource = resource
    this.owner = owner
    this.token = token
    this.#expiresAt = expiresAt
    this.#validUntil = sentAt + ttlMs
  }

  /**
   * @internal On this process's monotonic clock (performance.now()), a time by which the lock has
   * certainly not lapsed: the last acquire or extend's send time plus its TTL. Unlike `expiresAt`
   * it needs no agreement between the local and the Redis clock.
   */
  get validUntil(): number {
    return this.#validUntil
  }

  /** Epoch ms on the Redis server's clock when the lock lapses unless extended. */
  get expiresAt(): number {
    return this.#expiresAt
  }

  get released(): boolean {
    return this.#outcome !== null
  }

  /** Pushes expiry to now + ttlMs; false if the lock was no longer ours (it is then lost). */
  async extend(ttlMs: number = this.#manager.defaultTtlMs): Promise<boolean> {
    this.#manager.validateTtl(ttlMs)
    if (this.#outcome) return false
    const m = this.#manager
    const sentAt = performance.now()
    const next = await m.deadlines.run(
      extendScript.run(m.redis, [m.lockKey(this.resource)], [this.owner, ttlMs]),
      'lock.extend',
    )
    if (next === 0) return false
    this.#expiresAt = next
    this.#validUntil = sentAt + ttlMs
    return true
  }

  /** Asks Redis whether this owner still holds the lock. */
  async isHeld(): Promise<boolean> {
    if (this.#outcome) return false
    const m = this.#manager
    return (await m.deadlines.run(m.redis.hget(m.lockKey(this.resource), 'o'), 'lock.isHeld')) === this.owner
  }

  /**
   * Releases once and reports what happened: `released`, `expired` (it had lapsed) or `not-owner`
   * (someone else holds it now). Later calls return the same answer without a round trip.
   */
  release(): Promise<ReleaseOutcome> {
    if (!this.#outcome) {
      const m = this.#manager
      m.unwatch(this)
      this.#outcome = instrument({ package: 'lock', operation: 'release' }, () =>
        m.deadlines.run(
          releaseScript.run(
            m.redis,
            [m.lockKey(this.resource), m.queueKey(this.resource)],
            [this.owner, m.channel(this.resource), m.handoffMs],
          ),
          'lock.release',
        ),
      )
      // A failed release must not leave a rejected promise cached forever: allow a retry.
      this.#outcome.catch(() => {
        this.#outcome = null
      })
    }
    return this.#outcome
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.release().catch(() => {})
  }
}
