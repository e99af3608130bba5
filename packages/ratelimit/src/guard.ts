import { randomBytes } from 'node:crypto'
import {
  InvalidArgumentError,
  publishEvent,
  type RedisClient,
  RedisUnavailableError,
  withTimeout,
} from '@rp/core'

/**
 * Sends a limiter's one command only when it can be answered: once a client has been ready, a
 * call made while it is reconnecting fails at once instead of joining ioredis's offline queue, and
 * every call is bounded by timeoutMs. The caller's failure policy turns the error into a decision.
 */
export class RedisGuard {
  readonly #redis: RedisClient
  readonly #timeoutMs: number
  #everReady = false

  constructor(redis: RedisClient, timeoutMs: number) {
    this.#redis = redis
    this.#timeoutMs = timeoutMs
  }

  run<T>(operation: string, work: () => Promise<T>): Promise<T> {
    const status = this.#redis.status
    if (status === 'ready') this.#everReady = true
    else if (
      status === 'reconnecting' ||
      status === 'end' ||
      status === 'close' ||
      (status === 'connecting' && this.#everReady)
    ) {
      return Promise.reject(new RedisUnavailableError(`${operation}: the Redis connection is ${status}`))
    }
    return withTimeout(work(), this.#timeoutMs, operation)
  }
}

/** Errors that mean "the caller is wrong" are thrown; everything else goes to the failure policy. */
export function isPolicyError(error: unknown): boolean {
  return !(error instanceof InvalidArgumentError)
}

export function reportFallback(operation: string, policy: string, error: unknown): void {
  publishEvent({ package: 'ratelimit', event: 'failure-policy', operation, policy, error })
}

const PROCESS_TAG = randomBytes(4).toString('base64url')
let sequence = 0
/** Unique per call across the fleet: sliding-log members must never collide. */
export function nextNonce(): string {
  sequence = (sequence + 1) % Number.MAX_SAFE_INTEGER
  return `${PROCESS_TAG}${sequence.toString(36)}:`
}
