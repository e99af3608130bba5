import { randomUUID } from 'node:crypto'
import {
  assertUsableClient,
  type BatchOption,
  type Hold,
  InvalidArgumentError,
  instrument,
  keyspace,
  type LeaseKeys,
  LeaseSet,
  Notifier,
  promised,
  type RedisClient,
  RedisGuard,
  requireBoolean,
  requireDurationMs,
  requireKnownOptions,
  requireNonEmptyString,
  requireOptions,
  requirePositiveInteger,
  requireSignal,
  requireTimeoutMs,
  Watchdog,
} from '@rp/core/kit'
import { LockLostError, lockTimeout } from './errors.js'

export interface SemaphoreOptions extends BatchOption {
  redis: RedisClient
  name: string
  /** How many holders at once (the family's name for a count limit). */
  limit?: number
  /** @deprecated The same as `limit`, kept from 0.1. */
  permits?: number
  /** A permit not released or extended lapses after this long; default 30000. */
  ttlMs?: number
  prefix?: string
  timeoutMs?: number
}

export interface SemaphoreAcquireOptions {
  /** How long to wait for a permit; default 10000, 0 tries once. */
  waitMs?: number
  signal?: AbortSignal
}

/** A semaphore permit: core's Hold. */
export type Permit = Hold

/**
 * A counting semaphore on Redis server time: a thin policy over core's LeaseSet. Permits of
 * crashed holders lapse and are reclaimed; waiters are woken in queue order, one per release.
 */
export class Semaphore {
  readonly #name: string
  readonly #keys: LeaseKeys
  readonly #permits: number
  readonly #ttlMs: number
  readonly #leases: LeaseSet
  readonly #notifier: Notifier
  readonly #watchdog = new Watchdog('lock')

  constructor(options: SemaphoreOptions) {
    requireOptions('options', options)
    requireKnownOptions('options', options, [
      'redis',
      'name',
      'limit',
      'permits',
      'ttlMs',
      'prefix',
      'timeoutMs',
      'batch',
    ])
    const redis = assertUsableClient(options.redis)
    const ks = keyspace(requireNonEmptyString('prefix', options.prefix ?? 'lock:semaphore'))
    this.#name = requireNonEmptyString('name', options.name)
    const set = ks.key(this.#name, 'permits')
    this.#keys = {
      set,
      queue: ks.key(this.#name, 'waiters'),
      channel: ks.channel(this.#name, 'permits', 'released'),
    }
    if (options.limit !== undefined && options.permits !== undefined && options.limit !== options.permits)
      throw new InvalidArgumentError('limit', 'and permits name the same thing; give one of them')
    this.#permits = requirePositiveInteger(
      options.limit === undefined && options.permits !== undefined ? 'permits' : 'limit',
      options.limit ?? options.permits,
    )
    this.#ttlMs = requireTimeoutMs('ttlMs', options.ttlMs ?? 30_000)
    const guard = new RedisGuard(redis, requireTimeoutMs('timeoutMs', options.timeoutMs ?? 1_000), {
      batch: requireBoolean('batch', options.batch ?? true),
    })
    this.#notifier = new Notifier(redis)
    this.#leases = new LeaseSet({
      package: 'lock',
      redis,
      guard,
      notifier: this.#notifier,
      name: 'semaphore',
    })
  }

  /** One round trip: a Permit, or null when all permits are held. */
  tryAcquire(options: Record<string, never> = {}): Promise<Permit | null> {
    return instrument({ package: 'lock', operation: 'semaphore.tryAcquire' }, async () => {
      // A try does not wait: a waitMs or a signal here would be silently meaningless.
      requireKnownOptions('options', requireOptions('options', options), [])
      const { grant } = await this.#leases.attempt(this.#keys, this.#permits, this.#ttlMs, randomUUID())
      return grant ? this.#leases.hold(this.#keys, grant, this.#ttlMs, {}) : null
    })
  }

  /** A Permit, waiting up to `waitMs` (woken on release). Throws LockTimeoutError or AbortError. */
  acquire(options: SemaphoreAcquireOptions = {}): Promise<Permit> {
    return promised(() => {
      const o = requireOptions('options', options)
      requireKnownOptions('options', o, ['waitMs', 'signal'])
      const waitMs = requireDurationMs('waitMs', o.waitMs ?? 10_000)
      const signal = requireSignal('signal', o.signal)
      // One id for the whole wait: it is both the permit id and the waiter's place in the queue.
      const id = randomUUID()
      return instrument({ package: 'lock', operation: 'semaphore.acquire' }, async () => {
        const grant = await this.#leases.wait(this.#keys, this.#permits, this.#ttlMs, id, {
          what: `acquire '${this.#name}'`,
          waitMs,
          signal,
          timeout: lockTimeout(this.#name, waitMs, `all ${this.#permits} permits held`),
        })
        return this.#leases.hold(this.#keys, grant, this.#ttlMs, {})
      })
    })
  }

  /**
   * Runs `fn` holding a permit, renewed by core's watchdog every ttl/3 and released afterwards;
   * `fn`'s signal aborts with LockLostError if the permit is lost (see LockManager.using).
   */
  using<T>(
    fn: (signal: AbortSignal, permit: Permit) => Promise<T>,
    options: SemaphoreAcquireOptions = {},
  ): Promise<T> {
    // Inside promised: reading options (a getter, a Proxy) may throw, and must reject instead.
    return promised(() =>
      this.#watchdog.using(() => this.acquire(options), fn, {
        signal: options?.signal,
        lostError: (why, cause) => new LockLostError(this.#name, 0, why, { cause }),
      }),
    )
  }

  /** How many permits are held now. */
  count(): Promise<number> {
    return this.#leases.count(this.#keys)
  }

  /** Stops renewals and closes the pub/sub connection (bounded); permits are not released. */
  async close(): Promise<void> {
    this.#watchdog.close()
    await this.#notifier.close()
  }
}
