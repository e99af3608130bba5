import type { RedisClient } from './client.js'
import { RedisUnavailableError } from './errors.js'
import { Deadlines } from './timeout.js'

/**
 * Sends a hot-path command only when it can be answered: once a client has been ready, a
 * call made while it is reconnecting fails at once instead of joining ioredis's offline queue, and
 * every call is bounded by timeoutMs. Packages turn the error into their documented failure behaviour.
 */
export class RedisGuard {
  readonly #redis: RedisClient
  readonly #deadlines: Deadlines
  #everReady = false

  /** @throws InvalidArgumentError when timeoutMs is not a usable timer duration. */
  constructor(redis: RedisClient, timeoutMs: number) {
    this.#redis = redis
    this.#deadlines = new Deadlines(timeoutMs)
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
    return this.#deadlines.run(work(), operation)
  }
}
