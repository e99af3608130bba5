import { randomBytes } from 'node:crypto'
import { InvalidArgumentError } from '@rp/core/kit'
import { emit } from './events.js'

/** Errors that mean "the caller is wrong" are thrown; everything else goes to the failure policy. */
export function isPolicyError(error: unknown): boolean {
  return !(error instanceof InvalidArgumentError)
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
