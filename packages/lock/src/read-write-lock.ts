import { randomUUID } from 'node:crypto'
import {
  assertUsableClient,
  type BatchOption,
  createHold,
  fullJitterBackoff,
  type Hold,
  instrument,
  keyspace,
  Notifier,
  promised,
  type RedisClient,
  RedisGuard,
  releasedIf,
  requireBoolean,
  requireDurationMs,
  requireKnownOptions,
  requireNonEmptyString,
  requireOneOf,
  requireOptions,
  requireSignal,
  requireTimeoutMs,
  Watchdog,
  waitForRelease,
} from '@rp/core/kit'
import { LockLostError, lockTimeout } from './errors.js'
import { rwAbandonScript, rwAcquireScript, rwExtendScript, rwReleaseScript } from './scripts.js'

export interface ReadWriteLockOptions extends BatchOption {
  redis: RedisClient
  name: string
  /** Default hold TTL; default 30000. */
  ttlMs?: number
  prefix?: string
  timeoutMs?: number
}

export interface RwAcquireOptions {
  /** How long to wait; default 10000, 0 tries once. */
  waitMs?: number
  signal?: AbortSignal
  ttlMs?: number
}

/** A read or write hold. */
export type RwHold = Hold & { readonly mode: 'read' | 'write' }

// How long a waiting writer's intent blocks new readers without being refreshed by a retry; longer
// than the 1 s backoff cap, so an active waiter never lets its intent lapse.
const INTENT_MS = 2_500
const queuedBackoff = fullJitterBackoff(100, 1_000)

/** Many readers or one writer. A waiting writer stops new readers, so writers are not starved. */
export class ReadWriteLock {
  readonly #redis: RedisClient
  readonly #keys: [string, string, string, string]
  readonly #channel: string
  readonly #ttlMs: number
  readonly #guard: RedisGuard
  readonly #watchdog = new Watchdog('lock')
  readonly #notifier: Notifier
  readonly #name: string

  constructor(options: ReadWriteLockOptions) {
    requireOptions('options', options)
    requireKnownOptions('options', options, ['redis', 'name', 'ttlMs', 'prefix', 'timeoutMs', 'batch'])
    this.#redis = assertUsableClient(options.redis)
    this.#name = requireNonEmptyString('name', options.name)
    const ks = keyspace(requireNonEmptyString('prefix', options.prefix ?? 'lock:rw'))
    this.#keys = [
      ks.key(this.#name, 'readers'),
      ks.key(this.#name, 'writer'),
      ks.key(this.#name, 'waiting-writers'),
      ks.key(this.#name, 'waiters'),
    ]
    this.#channel = ks.channel(this.#name, 'released')
    this.#ttlMs = requireTimeoutMs('ttlMs', options.ttlMs ?? 30_000)
    this.#guard = new RedisGuard(this.#redis, requireTimeoutMs('timeoutMs', options.timeoutMs ?? 1_000), {
      batch: requireBoolean('batch', options.batch ?? true),
    })
    this.#notifier = new Notifier(this.#redis)
  }

  /** Shared hold: waits while a writer holds or waits. */
  read(options: RwAcquireOptions = {}): Promise<RwHold> {
    return this.#acquire('read', options)
  }

  /** Exclusive hold: waits for readers to drain, and meanwhile keeps new readers out. */
  write(options: RwAcquireOptions = {}): Promise<RwHold> {
    return this.#acquire('write', options)
  }

  #acquire(mode: 'read' | 'write', options: RwAcquireOptions): Promise<RwHold> {
    return promised(() => {
      const o = requireOptions('options', options)
      requireKnownOptions('options', o, ['waitMs', 'signal', 'ttlMs'])
      const waitMs = requireDurationMs('waitMs', o.waitMs ?? 10_000)
      const ttlMs = requireTimeoutMs('ttlMs', o.ttlMs ?? this.#ttlMs)
      const signal = requireSignal('signal', o.signal)
      const id = randomUUID()
      const flag = mode === 'read' ? 'r' : 'w'
      const deadline = performance.now() + waitMs
      return instrument({ package: 'lock', operation: `rw.${mode}` }, () =>
        waitForRelease({
          what: `acquire '${this.#name}'`,
          retryConnectionErrors: true,
          waitMs,
          signal,
          channel: this.#channel,
          notifier: this.#notifier,
          // Waiters queue in Redis and a release wakes, by id, only those that can go now; polling
          // only covers a lost wake-up, so it can be slow.
          message: id,
          backoff: queuedBackoff,
          attempt: async () => {
            const queueMs = waitMs > 0 ? Math.max(1, Math.ceil(deadline - performance.now())) : 0
            const sentAt = performance.now()
            const [ok, value] = await this.#guard.script(`rw.${mode}`, rwAcquireScript, this.#keys, [
              flag,
              id,
              ttlMs,
              INTENT_MS,
              queueMs,
            ])
            return ok === 1
              ? { value: this.#hold(mode, id, value, ttlMs, sentAt) }
              : { value: null, hintMs: value }
          },
          timeout: lockTimeout(
            this.#name,
            waitMs,
            mode === 'read' ? 'a writer holds or is waiting' : 'readers or a writer hold it',
          ),
          // Leaves the queue; a writer also withdraws its intent, so readers need not wait for it to lapse.
          abandon: () =>
            this.#guard.script('rw.abandon', rwAbandonScript, this.#keys, [flag, id, this.#channel]),
        }),
      )
    })
  }

  #hold(mode: 'read' | 'write', id: string, expiresAt: number, ttlMs: number, sentAt: number): RwHold {
    const flag = mode === 'read' ? 'r' : 'w'
    const keys = [this.#keys[0], this.#keys[1]]
    return createHold(
      {
        id,
        expiresAt,
        ttlMs,
        sentAt,
        call: (operation, work) => this.#guard.run(operation, work),
        package: 'lock',
        name: 'rw',
        release: () =>
          rwReleaseScript
            .run(this.#redis, this.#keys, [flag, id, this.#channel], this.#guard.scriptOptions)
            .then(releasedIf),
        extend: (ttlMs) =>
          rwExtendScript.run(this.#redis, keys, [flag, id, ttlMs], this.#guard.scriptOptions),
      },
      { mode },
    )
  }

  /**
   * Runs `fn` with a read or write hold, renewed by core's watchdog every ttl/3 and released
   * afterwards; `fn`'s signal aborts with LockLostError if the hold is lost.
   */
  using<T>(
    mode: 'read' | 'write',
    fn: (signal: AbortSignal, hold: RwHold) => Promise<T>,
    options: RwAcquireOptions = {},
  ): Promise<T> {
    return promised(() => {
      requireOneOf('mode', mode, ['read', 'write'] as const)
      return this.#watchdog.using(() => this.#acquire(mode, options), fn, {
        signal: options?.signal,
        lostError: (why, cause) => new LockLostError(this.#name, 0, why, { cause }),
      })
    })
  }

  /** Stops renewals and closes the pub/sub connection (bounded); holds are not released. */
  async close(): Promise<void> {
    this.#watchdog.close()
    await this.#notifier.close()
  }
}
