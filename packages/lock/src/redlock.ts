import { randomUUID } from 'node:crypto'
import {
  AbortError,
  assertUsableClient,
  delay,
  fullJitterBackoff,
  InvalidArgumentError,
  instrument,
  type Keyspace,
  keyspace,
  promised,
  type RedisClient,
  requireBoolean,
  requireNonEmptyString,
  requireNonNegativeInteger,
  requireOptions,
  requireSignal,
  requireTimeoutMs,
  withTimeout,
} from '@rp/core'
import { RedlockQuorumError } from './errors.js'
import { redlockExtendScript, redlockReleaseScript } from './scripts.js'

export interface RedlockOptions {
  /** Clock drift allowance as a fraction of the TTL; default 0.01. */
  driftFactor?: number
  prefix?: string
  /**
   * Per-instance time budget for one command; default 500 ms, enough for instances in other
   * regions (what Redlock's independent instances usually are). Lower it for instances nearby.
   */
  instanceTimeoutMs?: number
  /** Allow fewer than 3 instances (no fault tolerance then). */
  force?: boolean
}

export interface RedlockLock {
  readonly resource: string
  readonly value: string
  /** How long the lock is safe to rely on, measured from acquisition: TTL − elapsed − drift. */
  readonly validityMs: number
  /** performance.now() time after which the lock must be considered lost. */
  readonly validUntil: number
  release(): Promise<number>
  extend(ttlMs: number): Promise<boolean>
  [Symbol.asyncDispose](): Promise<void>
}

const backoff = fullJitterBackoff(20, 400)

/**
 * Redlock over independent Redis instances (not replicas of one another): the lock holds when a
 * majority (N/2+1) accepted it within the TTL less elapsed time and drift.
 */
export class Redlock {
  readonly #clients: RedisClient[]
  readonly #quorum: number
  readonly #drift: number
  readonly #instanceTimeoutMs: number
  readonly #prefix: string
  readonly #keyspace: Keyspace

  constructor(clients: readonly RedisClient[], options: RedlockOptions = {}) {
    requireOptions('options', options)
    if (options.force !== undefined) requireBoolean('force', options.force)
    if (!Array.isArray(clients) || clients.length === 0)
      throw new InvalidArgumentError('clients', 'must be a non-empty array of ioredis clients')
    if (clients.length < 3 && !options.force) {
      throw new InvalidArgumentError(
        'clients',
        `Redlock needs at least 3 independent instances to tolerate a failure, got ${clients.length}; pass { force: true } to accept that`,
      )
    }
    this.#clients = clients.map((c) => assertUsableClient(c))
    this.#quorum = Math.floor(clients.length / 2) + 1
    const drift = options.driftFactor ?? 0.01
    if (typeof drift !== 'number' || !(drift >= 0 && drift < 1))
      throw new InvalidArgumentError('driftFactor', 'must be a number in [0, 1)')
    this.#drift = drift
    this.#instanceTimeoutMs = requireTimeoutMs('instanceTimeoutMs', options.instanceTimeoutMs ?? 500)
    this.#prefix = requireNonEmptyString('prefix', options.prefix ?? 'redlock')
    this.#keyspace = keyspace(this.#prefix)
  }

  get quorum(): number {
    return this.#quorum
  }

  #key(resource: string): string {
    return this.#keyspace.key(resource)
  }

  async #onAll(fn: (c: RedisClient) => Promise<unknown>): Promise<number> {
    const settled = await Promise.allSettled(
      this.#clients.map((c) => withTimeout(fn(c), this.#instanceTimeoutMs, 'redlock')),
    )
    return settled.filter((s) => s.status === 'fulfilled' && (s.value === 'OK' || s.value === 1)).length
  }

  /** Acquires on a majority within `waitMs`, or throws RedlockQuorumError (partial holds are released). */
  acquire(
    resource: string,
    options: { ttlMs: number; waitMs?: number; signal?: AbortSignal },
  ): Promise<RedlockLock> {
    return promised(() => {
      requireNonEmptyString('resource', resource)
      requireOptions('options', options)
      const ttlMs = requireTimeoutMs('ttlMs', options?.ttlMs)
      const waitMs = requireNonNegativeInteger('waitMs', options.waitMs ?? 0)
      const signal = requireSignal('signal', options.signal)
      return this.#acquire(resource, this.#key(resource), ttlMs, waitMs, signal)
    })
  }

  #acquire(
    resource: string,
    key: string,
    ttlMs: number,
    waitMs: number,
    signal: AbortSignal | undefined,
  ): Promise<RedlockLock> {
    const options = { signal }
    return instrument({ package: 'lock', operation: 'redlock.acquire' }, async () => {
      const deadline = performance.now() + waitMs
      let best = 0
      for (let attempt = 0; ; attempt++) {
        if (options.signal?.aborted)
          throw new AbortError(`redlock acquire '${resource}'`, { cause: options.signal.reason })
        const value = randomUUID()
        const started = performance.now()
        const acquired = await this.#onAll((c) => c.set(key, value, 'PX', ttlMs, 'NX'))
        const elapsed = performance.now() - started
        const validityMs = Math.floor(ttlMs - elapsed - (ttlMs * this.#drift + 2))
        if (acquired >= this.#quorum && validityMs > 0)
          return this.#lock(resource, key, value, validityMs, started)
        best = Math.max(best, acquired)
        await this.#onAll((c) => redlockReleaseScript.run(c, [key], [value]))
        const remaining = deadline - performance.now()
        if (remaining <= 0) throw new RedlockQuorumError(resource, waitMs, best, this.#quorum)
        await delay(
          Math.min(remaining, Math.max(1, backoff(attempt))),
          signal,
          `redlock acquire '${resource}'`,
        )
      }
    })
  }

  #lock(resource: string, key: string, value: string, validityMs: number, started: number): RedlockLock {
    let released: Promise<number> | null = null
    const lock = {
      resource,
      value,
      validityMs,
      validUntil: started + validityMs,
      release: () => {
        if (!released) {
          const attempt = this.#onAll((c) => redlockReleaseScript.run(c, [key], [value]))
          released = attempt
          // Only a release a quorum confirmed is final: after a blip, calling again retries it.
          void attempt.then((n) => {
            if (n < this.#quorum && released === attempt) released = null
          })
        }
        return released
      },
      extend: async (ttlMs: number) => {
        requireTimeoutMs('ttlMs', ttlMs)
        if (released) return false
        const t = performance.now()
        const ok = await this.#onAll((c) => redlockExtendScript.run(c, [key], [value, ttlMs]))
        const validity = Math.floor(ttlMs - (performance.now() - t) - (ttlMs * this.#drift + 2))
        if (ok < this.#quorum || validity <= 0) return false
        lock.validityMs = validity
        lock.validUntil = t + validity
        return true
      },
      [Symbol.asyncDispose]: async () => {
        await lock.release().catch(() => 0)
      },
    }
    return lock
  }
}
