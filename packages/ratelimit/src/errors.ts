import { WaitTimeoutError } from '@rp/core/kit'

/**
 * Thrown by APIs that must either admit or throw (ConcurrencyLimiter.acquire) when no slot freed up
 * within waitMs; limit() never throws it. `resource` is the key, `retryAfterMs` a hint.
 */
export class RateLimitExceededError extends WaitTimeoutError {
  readonly retryAfterMs: number
  constructor(resource: string, waitMs: number, detail: string, retryAfterMs: number) {
    super(resource, waitMs, detail, { code: 'RP_RATE_LIMITED' })
    this.retryAfterMs = retryAfterMs
  }
}
