import { CircuitBreaker } from './circuit-breaker.js'
import type { RedisClient } from './client.js'
import { isConnectionError, RedisUnavailableError, type RpError, toRpError } from './errors.js'
import type { Script, ScriptArg, ScriptRunOptions } from './script.js'
import { Deadlines, type Outcome } from './timeout.js'

/**
 * The one Redis-call path every pattern uses. A call is sent only when it can be answered: once a
 * client has been ready, a call made while it is reconnecting fails at once instead of joining
 * ioredis's offline queue; every call is bounded by timeoutMs; every rejection is an @rp error
 * (Deadlines maps it). With `breaker`, connection failures and timeouts (never data errors) open a
 * circuit that skips Redis for a while. Packages turn the error into their documented behaviour.
 */
export class RedisGuard {
  readonly #redis: RedisClient
  readonly #deadlines: Deadlines
  readonly #breaker: CircuitBreaker | null
  #everReady = false
  /** How this instance's scripts run: in the tick's batch (the default) or alone (`batch: false`). */
  readonly scriptOptions: ScriptRunOptions

  /** @throws InvalidArgumentError when timeoutMs is not a usable timer duration. */
  constructor(redis: RedisClient, timeoutMs: number, options: { breaker?: boolean; batch?: boolean } = {}) {
    this.#redis = redis
    this.#deadlines = new Deadlines(timeoutMs)
    this.#breaker = options.breaker ? new CircuitBreaker() : null
    this.scriptOptions = Object.freeze({ batch: options.batch !== false })
  }

  /** `run` for one script call on this guard's client, batched unless the instance said `batch: false`. */
  script<T>(
    operation: string,
    script: Script<T>,
    keys: readonly string[],
    args?: readonly ScriptArg[],
  ): Promise<T> {
    return this.run(operation, () => script.run(this.#redis, keys, args, this.scriptOptions))
  }

  run<T>(operation: string, work: () => Promise<T>): Promise<T> {
    const breaker = this.#breaker
    // Settled either way below: a probe that never reported back would keep the circuit open.
    if (breaker && !breaker.allow())
      return Promise.reject(
        new RedisUnavailableError(
          `${operation}: the circuit is open: Redis failed repeatedly, so it is skipped for a while`,
        ),
      )
    // The breaker hears each outcome from the deadline list itself, not from one more promise
    // chained on every call (a cache hit's hottest path).
    const report = breaker ? this.#report : undefined
    try {
      return this.#send(operation, work, report)
    } catch (error) {
      // A call that throws before it returns a promise still rejects.
      const mapped = toRpError(error, operation)
      report?.(mapped)
      return Promise.reject(mapped)
    }
  }

  // A data error is Redis answering: only connectivity counts against it.
  readonly #report = (error?: RpError): void => {
    if (error !== undefined && isConnectionError(error)) this.#breaker!.failure()
    else this.#breaker!.success()
  }

  #send<T>(operation: string, work: () => Promise<T>, report: Outcome | undefined): Promise<T> {
    const status = this.#redis.status
    if (status === 'ready') this.#everReady = true
    else if (
      status === 'reconnecting' ||
      status === 'end' ||
      status === 'close' ||
      (status === 'connecting' && this.#everReady)
    ) {
      const error = new RedisUnavailableError(`${operation}: the Redis connection is ${status}`)
      report?.(error)
      return Promise.reject(error)
    }
    return this.#deadlines.run(work(), operation, report)
  }
}
