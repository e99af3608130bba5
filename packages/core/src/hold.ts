import { promised, requireTimeoutMs } from './validate.js'

/**
 * A held permit, lease or read/write hold: release once, extend while held, dispose on scope exit.
 * Every package's handle is built by createHold, so all behave exactly alike.
 */
export interface Hold {
  readonly id: string
  /** Epoch ms on the Redis server clock when the hold lapses unless extended (0: never tracked). */
  readonly expiresAt: number
  /**
   * Frees it; true if it was still held. Once it succeeded, later calls return the same answer
   * without a round trip; after a failure (a reconnect blip, a timeout) the next call asks Redis
   * again, so a slot is never left taken because one release failed.
   */
  release(): Promise<boolean>
  /** Pushes expiry to now + ttlMs; false if it had already lapsed or was released. */
  extend(ttlMs?: number): Promise<boolean>
  [Symbol.asyncDispose](): Promise<void>
}

export interface HoldOperations {
  id: string
  expiresAt: number
  defaultTtlMs: number
  /** The owner's bounded call path (timeoutMs, typed errors): `call(operation, work)`. */
  call<T>(operation: string, work: () => Promise<T>): Promise<T>
  /** Names the calls in errors and timeouts, e.g. `semaphore`. */
  name: string
  /** Runs the release script; resolves to 1 if the hold was still there. */
  release(): Promise<number>
  /** Runs the extend script; resolves to the new expiry, or 0 if the hold lapsed. */
  extend(ttlMs: number): Promise<number>
}

/** Builds the handle every hold kind returns; `extra` adds the kind's own readonly fields. */
export function createHold<Extra extends object>(ops: HoldOperations, extra: Extra): Hold & Extra {
  let released: Promise<boolean> | null = null
  let expiresAt = ops.expiresAt
  const hold: Hold = {
    id: ops.id,
    get expiresAt() {
      return expiresAt
    },
    release() {
      if (!released) {
        const attempt = ops.call(`${ops.name}.release`, ops.release).then((n) => n === 1)
        released = attempt
        // Only a settled answer is final: a failed release must not be cached.
        attempt.catch(() => {
          if (released === attempt) released = null
        })
      }
      return released
    },
    extend(ttlMs = ops.defaultTtlMs) {
      return promised(async () => {
        requireTimeoutMs('ttlMs', ttlMs)
        if (released) return false
        const next = await ops.call(`${ops.name}.extend`, () => ops.extend(ttlMs))
        if (next === 0) return false
        expiresAt = next
        return true
      })
    },
    async [Symbol.asyncDispose]() {
      await hold.release().catch(() => false)
    },
  }
  return Object.assign(hold, extra)
}
