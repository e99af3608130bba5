import { publishEvent } from '@rp/core/kit'

/** Everything @rp/session publishes on `rp:event`, besides core's shared events. */
export type SessionEvent =
  /** A stored value could not be decoded (corrupt, or written by something else): read as no session. */
  | { package: 'session'; event: 'decode-error'; handle: string; field: string; error: unknown }
  /** get() could not reach Redis in time and, under `failure: 'anonymous'`, answered null. */
  | { package: 'session'; event: 'failure-policy'; operation: string; error: unknown }
  /**
   * Removing entries from a user's index failed after the sessions themselves ended: the entries
   * point at tombstones and leave at their absolute expiry, or at the next listForUser.
   */
  | { package: 'session'; event: 'index-error'; operation: string; error: unknown }
  /** A write arrived for a destroyed session and was refused: the tombstone at work. */
  | { package: 'session'; event: 'write-after-destroy'; handle: string; operation: string }

export function emit(event: SessionEvent): void {
  publishEvent(event)
}
