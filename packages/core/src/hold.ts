import { instrument } from './instrumentation.js'
import { promised, requireTimeoutMs } from './validate.js'

/** What a release found: it was ours and is freed, it had lapsed, or someone else holds it now. */
export type ReleaseOutcome = 'released' | 'expired' | 'not-owner'

export interface HoldOperations {
  id: string
  /** Epoch ms on the Redis server clock when the hold lapses unless extended. */
  expiresAt: number
  /** The TTL it was taken with: the default for extend(), and what the watchdog renews with. */
  ttlMs: number
  /** performance.now() when the acquire that won was sent. */
  sentAt: number
  /** The owning package, for instrumentation, e.g. `lock`. */
  package: string
  /** Names the operations in events, errors and timeouts, e.g. `semaphore`. */
  name: string
  /** The owner's bounded call path (timeoutMs, typed errors): `call(operation, work)`. */
  call<T>(operation: string, work: () => Promise<T>): Promise<T>
  /** Runs the release script. */
  release(): Promise<ReleaseOutcome>
  /** Runs the extend script; resolves to the new expiry, or 0 if the hold is no longer ours. */
  extend(ttlMs: number): Promise<number>
}

/**
 * A held lock, permit, lease or read/write hold: the one contract every hold kind shares, written
 * once. Release once, extend while held, dispose on scope exit (`await using`).
 */
export class Hold {
  readonly id: string
  readonly #ops: HoldOperations
  #expiresAt: number
  #validUntil: number
  /** The TTL of the last acquire or extend: how long the hold now lasts from it. */
  #lastTtlMs: number
  #released: Promise<ReleaseOutcome> | null = null
  /** Told after every extend that succeeds (the watchdog re-plans its renewals). */
  #onExtended: (() => void) | null = null

  constructor(ops: HoldOperations) {
    this.#ops = ops
    this.id = ops.id
    this.#expiresAt = ops.expiresAt
    this.#validUntil = ops.sentAt + ops.ttlMs
    this.#lastTtlMs = ops.ttlMs
  }

  /** The TTL of the last acquire or extend (an extend may shorten it): what validUntil counts from. */
  get lastTtlMs(): number {
    return this.#lastTtlMs
  }

  /** @internal The watchdog's hook: called after every extend that succeeds; null to stop. */
  set onExtended(listener: (() => void) | null) {
    this.#onExtended = listener
  }

  /** Epoch ms on the Redis server clock when it lapses unless extended (0: never recorded). */
  get expiresAt(): number {
    return this.#expiresAt
  }

  /**
   * On this process's monotonic clock (performance.now()), a time by which the hold has certainly
   * not lapsed: the last acquire or extend's send time plus its TTL. Unlike `expiresAt` it needs no
   * agreement between the local and the Redis clock; the watchdog works from it.
   */
  get validUntil(): number {
    return this.#validUntil
  }

  /** The TTL it was taken with. */
  get ttlMs(): number {
    return this.#ops.ttlMs
  }

  /** True once a release succeeded or is in flight. */
  get released(): boolean {
    return this.#released !== null
  }

  /**
   * Frees it and says what it found. Once a release succeeded, later calls return the same answer
   * without a round trip; after a failure (a reconnect blip, a timeout) the next call asks Redis
   * again, so a slot is never left taken because one release failed.
   */
  release(): Promise<ReleaseOutcome> {
    if (!this.#released) {
      const ops = this.#ops
      const attempt = instrument({ package: ops.package, operation: `${ops.name}.release` }, () =>
        ops.call(`${ops.name}.release`, ops.release),
      )
      this.#released = attempt
      attempt.catch(() => {
        if (this.#released === attempt) this.#released = null
      })
    }
    return this.#released
  }

  /** Pushes expiry to now + ttlMs (default: the TTL it was taken with); false if no longer held. */
  extend(ttlMs: number = this.#ops.ttlMs): Promise<boolean> {
    return promised(async () => {
      requireTimeoutMs('ttlMs', ttlMs)
      if (this.#released) return false
      const sentAt = performance.now()
      const ops = this.#ops
      const next = await instrument({ package: ops.package, operation: `${ops.name}.extend` }, () =>
        ops.call(`${ops.name}.extend`, () => ops.extend(ttlMs)),
      )
      if (next === 0) return false
      this.#expiresAt = next
      this.#validUntil = sentAt + ttlMs
      this.#lastTtlMs = ttlMs
      this.#onExtended?.()
      return true
    })
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.release().catch(() => {})
  }
}

/** A Hold with a kind's own readonly fields (`mode`, `key`, …). */
export function createHold<Extra extends object>(ops: HoldOperations, extra: Extra): Hold & Readonly<Extra> {
  return Object.assign(new Hold(ops), extra)
}

/** A script's 1/0 reply as a release outcome. */
export function releasedIf(n: number): ReleaseOutcome {
  return n === 1 ? 'released' : 'expired'
}
