import { RpError } from '@rp/core'

/** Thrown by APIs that must either admit or throw (ConcurrencyLimiter.acquire); limit() never throws it. */
export class RateLimitExceededError extends RpError {
  readonly retryAfterMs: number
  constructor(message: string, retryAfterMs: number) {
    super('RP_RATE_LIMITED', message)
    this.retryAfterMs = retryAfterMs
  }
}
