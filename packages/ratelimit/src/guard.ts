import { randomBytes } from 'node:crypto'
import { isConnectionError, isOutOfMemoryError } from '@rp/core/kit'
import { emit } from './events.js'

/**
 * Errors the failure policy decides: Redis cannot answer (down, paused, past the timeout) or
 * cannot write (maxmemory). Anything else is thrown: a bad argument, or a data error such as a
 * key of the wrong type, which is that key's trouble, never a sign that Redis is down (admitting
 * it forever would let one poisoned key switch its limit off).
 */
export function isPolicyError(error: unknown): boolean {
  return isConnectionError(error) || isOutOfMemoryError(error)
}

export function reportFallback(
  operation: string,
  policy: 'open' | 'closed' | 'memory',
  error: unknown,
): void {
  emit({ package: 'ratelimit', event: 'failure-policy', operation, policy, error })
}

const PROCESS_TAG = randomBytes(4).toString('base64url')
let sequence = 0
/** Unique per call across the fleet: sliding-log members must never collide. */
export function nextNonce(): string {
  sequence = (sequence + 1) % Number.MAX_SAFE_INTEGER
  return `${PROCESS_TAG}${sequence.toString(36)}:`
}
