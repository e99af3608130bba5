import { type Deadlines, requirePositiveInteger } from '@rp/core'

/** A held permit or read/write hold: release once, extend while held, dispose on scope exit. */
export interface Hold {
  readonly id: string
  /** Epoch ms on the Redis server clock when the hold lapses unless extended. */
  readonly expiresAt: number
  /** Frees it; true if it was still held. Idempotent. */
  release(): Promise<boolean>
  /** Pushes expiry to now + ttlMs; false if it had already lapsed. */
  extend(ttlMs?: number): Promise<boolean>
  [Symbol.asyncDispose](): Promise<void>
}

export interface HoldOperations {
  id: string
  expiresAt: number
  defaultTtlMs: number
  /** The owner's call bound (timeoutMs), shared by all its calls. */
  deadlines: Deadlines
  name: string
  /** Runs the release script; resolves to 1 if the hold was still there. */
  release(): Promise<number>
  /** Runs the extend script; resolves to the new expiry, or 0 if the hold lapsed. */
  extend(ttlMs: number): Promise<number>
}

/** Builds the handle Semaphore and ReadWriteLock return, so both behave exactly alike. */
export function createHold<Extra extends object>(ops: HoldOperations, extra: Extra): Hold & Extra {
  let released: Promise<boolean> | null = null
  let expiresAt = ops.expiresAt
  const hold: Hold = {
    id: ops.id,
    get expiresAt() {
      return expiresAt
    },
    release() {
      released ??= ops.deadlines.run(ops.release(), `${ops.name}.release`).then((n) => n === 1)
      return released
    },
    async extend(ttlMs = ops.defaultTtlMs) {
      requirePositiveInteger('ttlMs', ttlMs)
      if (released) return false
      const next = await ops.deadlines.run(ops.extend(ttlMs), `${ops.name}.extend`)
      if (next === 0) return false
      expiresAt = next
      return true
    },
    async [Symbol.asyncDispose]() {
      await hold.release().catch(() => false)
    },
  }
  return Object.assign(hold, extra)
}
