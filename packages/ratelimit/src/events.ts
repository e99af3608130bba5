import { publishEvent } from '@rp/core/kit'

/** Everything @rp/ratelimit publishes on `rp:event`, besides core's shared events. */
export type RateLimitEvent =
  /** Redis could not decide in time; the failure policy did (`open`, `closed` or `memory`). */
  {
    package: 'ratelimit'
    event: 'failure-policy'
    operation: string
    policy: 'open' | 'closed' | 'memory'
    error: unknown
  }

export function emit(event: RateLimitEvent): void {
  publishEvent(event)
}
