import { randomUUID } from 'node:crypto'
import {
  assertUsableClient,
  createHold,
  Deadlines,
  type Hold,
  instrument,
  keyspace,
  Notifier,
  promised,
  type RedisClient,
  requireNonEmptyString,
  requireNonNegativeInteger,
  requireOptions,
  requirePositiveInteger,
  requireSignal,
  requireTimeoutMs,
} from '@rp/core'
import { semaphoreAcquireScript, semaphoreExtendScript, semaphoreReleaseScript } from './scripts.js'
import { acquireWithWait } from './wait.js'

export interface SemaphoreOptions {
  redis: RedisClient
  name: string
  /** How many holders at once. */
  permits: number
  /** A permit not released or extended lapses after this long; default 30000. */
  ttlMs?: number
  prefix?: string
  timeoutMs?: number
}

/** A semaphore permit. */
export type Permit = Hold

/** A counting semaphore on Redis server time; permits of crashed holders lapse and are reclaimed. */
export class Semaphore {
  readonly #redis: RedisClient
  readonly #key: string
  readonly #channel: string
  readonly #queue: string
  readonly #permits: number
  readonly #ttlMs: number
  readonly #deadlines: Deadlines
  readonly #notifier: Notifier

  constructor(options: SemaphoreOptions) {
    requireOptions('options', options)
    this.#redis = assertUsableClient(options.redis)
    const ks = keyspace(requireNonEmptyString('prefix', options.prefix ?? 'lock:semaphore'))
    this.#key = ks.key(requireNonEmptyString('name', options.name), 'permits')
    this.#channel = `${this.#key}:released`
    this.#queue = ks.key(options.name, 'waiters')
    this.#permits = requirePositiveInteger('permits', options.permits)
    this.#ttlMs = requireTimeoutMs('ttlMs', options.ttlMs ?? 30_000)
    this.#deadlines = new Deadlines(requireTimeoutMs('timeoutMs', options.timeoutMs ?? 1_000))
    this.#notifier = new Notifier(this.#redis)
  }

  #permit(id: string, expiresAt: number): Permit {
    return createHold(
      {
        id,
        expiresAt,
        defaultTtlMs: this.#ttlMs,
        call: (operation, work) => this.#deadlines.run(work(), operation),
        name: 'semaphore',
        release: () => semaphoreReleaseScript.run(this.#redis, [this.#key, this.#queue], [id, this.#channel]),
        extend: (ttlMs) => semaphoreExtendScript.run(this.#redis, [this.#key], [id, ttlMs]),
      },
      {},
    )
  }

  async #attempt(id: string = randomUUID(), queueMs = 0): Promise<{ permit: Permit | null; hintMs: number }> {
    const [ok, value] = await this.#deadlines.run(
      semaphoreAcquireScript.run(
        this.#redis,
        [this.#key, this.#queue],
        [this.#permits, this.#ttlMs, id, queueMs],
      ),
      'semaphore.acquire',
    )
    return ok === 1 ? { permit: this.#permit(id, value), hintMs: 0 } : { permit: null, hintMs: value }
  }

  /** One round trip: a Permit, or null when all permits are held. */
  tryAcquire(): Promise<Permit | null> {
    return instrument(
      { package: 'lock', operation: 'semaphore.tryAcquire' },
      async () => (await this.#attempt()).permit,
    )
  }

  /** A Permit, waiting up to `waitMs` (woken on release). Throws LockTimeoutError or AbortError. */
  acquire(options: { waitMs?: number; signal?: AbortSignal } = {}): Promise<Permit> {
    return promised(() => this.#acquire(requireOptions('options', options)))
  }

  #acquire(options: { waitMs?: number; signal?: AbortSignal }): Promise<Permit> {
    const waitMs = requireNonNegativeInteger('waitMs', options.waitMs ?? 10_000)
    const signal = requireSignal('signal', options.signal)
    // One id for the whole wait: it is both the permit id and the waiter's place in the queue.
    const id = randomUUID()
    const deadline = performance.now() + waitMs
    return instrument({ package: 'lock', operation: 'semaphore.acquire' }, () =>
      acquireWithWait({
        resource: this.#key,
        waitMs,
        signal,
        channel: this.#channel,
        notifier: this.#notifier,
        message: id,
        attempt: async () => {
          const queueMs = waitMs > 0 ? Math.max(1, Math.ceil(deadline - performance.now())) : 0
          const r = await this.#attempt(id, queueMs)
          return { value: r.permit, hintMs: r.hintMs }
        },
        abandon: () => this.#deadlines.run(this.#redis.zrem(this.#queue, id), 'semaphore.abandon'),
        busy: `all ${this.#permits} permits held`,
      }),
    )
  }

  async close(): Promise<void> {
    await this.#notifier.close()
  }
}
