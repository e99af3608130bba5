import { randomUUID } from 'node:crypto'
import {
  AbortError,
  isOutOfMemoryError,
  MAX_TIMER_MS,
  type Notifier,
  WaitTimeoutError,
  waitForRelease,
  withTimeout,
} from '@rp/core/kit'

// A loader's announcement ends the wait at once; polling (for a lost announcement, or a lease that
// lapses) reads about every 250 ms, as one read per round also tries to take the lease.
const loaderBackoff = () => 250

import type { ResolvedSet, SetOptions } from './entry.js'
import { tagNames } from './entry.js'
import { emit } from './events.js'
import type { Tiers } from './tiers.js'

export interface GetOrSetOptions extends SetOptions {
  /** Soft factory timeout: with a stale value at hand, return it after this long and let the refresh finish. */
  softTimeoutMs?: number
  /** Hard timeout: the call rejects with a WaitTimeoutError after this long, whatever it is waiting for. */
  hardTimeoutMs?: number
  /** Cache "not found" (a factory returning undefined) for this long. */
  negativeTtlMs?: number
  /** Refresh early, with a probability that rises as expiry nears, weighted by the factory's cost (XFetch). */
  earlyRefresh?: boolean
  /**
   * Stops waiting: this call rejects with AbortError. A load it started goes on for the other
   * callers sharing it (and is cached).
   */
  signal?: AbortSignal
}

type Factory<T> = () => Promise<T> | T

export function hardTimeout(key: string, ms: number): WaitTimeoutError {
  return new WaitTimeoutError(key, ms, 'hardTimeoutMs ran out', { what: 'get or set' })
}

/** `load` for one caller: rejected by its hard timeout (WaitTimeoutError) or its signal (AbortError). */
export function bounded<T>(
  load: Promise<T>,
  key: string,
  ms: number | undefined,
  signal: AbortSignal | undefined,
): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const timer =
      ms === undefined ? undefined : setTimeout(() => finish(() => reject(hardTimeout(key, ms))), ms)
    timer?.unref()
    const onAbort = () => finish(() => reject(new AbortError(`getOrSet '${key}'`, { cause: signal?.reason })))
    function finish(settle: () => void) {
      clearTimeout(timer)
      signal?.removeEventListener('abort', onAbort)
      settle()
    }
    signal?.addEventListener('abort', onAbort, { once: true })
    load.then(
      (value) => finish(() => resolve(value)),
      (error: unknown) => finish(() => reject(error)),
    )
  })
}

/**
 * The get-or-set state machine: one read that also elects a loader (a lease in Redis), the loader's
 * factory run and write, waiting for another process's loader (woken by pub/sub), stale-while-
 * revalidate within grace, soft and hard timeouts, and early refresh (XFetch).
 */
export class GetOrSetHandler {
  constructor(
    private readonly tiers: Tiers,
    private readonly notifier: Notifier,
    private readonly resolveSet: (options: SetOptions) => ResolvedSet,
    private readonly timeoutMs: number,
  ) {}

  /**
   * One read that also elects a loader, through core's wait loop: a fresh or stale value ends it,
   * so does holding the lease (this caller loads); otherwise another process is loading, and the
   * caller waits for its announcement on the loaded channel (or for its lease to lapse) and reads
   * again, within hardTimeoutMs.
   */
  run<T>(key: string, factory: Factory<T>, options: GetOrSetOptions): Promise<T> {
    const hard = options.hardTimeoutMs
    let force = false
    let round = 0
    return waitForRelease<{ value: T }>({
      what: `getOrSet '${key}'`,
      waitMs: hard ?? MAX_TIMER_MS,
      channel: this.tiers.remote.keys.loadedChannel,
      notifier: this.notifier,
      message: key,
      backoff: loaderBackoff,
      subscribeTimeoutMs: this.timeoutMs,
      attempt: async () => {
        const r = await this.#round(key, factory, options, force, round++ === 0)
        force = r.force
        return { value: r.done ? { value: r.value as T } : null }
      },
      timeout: () => hardTimeout(key, hard ?? 0),
    }).then((r) => r.value)
  }

  /** One read: the value (done), or not yet (another process holds the lease). */
  async #round<T>(
    key: string,
    factory: Factory<T>,
    options: GetOrSetOptions,
    forceLease: boolean,
    first: boolean,
  ): Promise<{ done: boolean; value?: T; force: boolean }> {
    const { remote, local, entries } = this.tiers
    const stats = entries.stats
    const lease = randomUUID()
    const generation = local.generation
    let found: Awaited<ReturnType<typeof remote.readOrLease>>
    try {
      found = await remote.readOrLease(key, lease, forceLease)
    } catch (error) {
      return { done: true, value: await this.#withoutLease(key, factory, options, error), force: forceLease }
    }
    const [raw, leased, corrupt] = found
    if (corrupt) entries.corrupt(key)
    const entry = raw ? entries.decode(key, raw) : null
    const value = (entry?.negative ? undefined : entry?.value) as T
    // Present but unreadable: like a miss, except that the next read must take the lease over it
    // (and overwrite it) even though it looks fresh.
    const force = forceLease || Boolean(raw && !entry)

    if (raw && entry && entry.freshMs > 0) {
      stats.hits++
      local.set(key, raw[0], raw[1], raw[2], tagNames(raw[4]), generation)
      if (
        options.earlyRefresh &&
        entry.factoryMs > 0 &&
        -entry.factoryMs * Math.log(Math.random()) >= entry.freshMs
      )
        void this.#earlyRefresh(key, factory, options)
      return { done: true, value, force }
    }
    if (entry) {
      // Stale, within grace.
      stats.staleHits++
      if (!leased) return { done: true, value, force }
      const refresh = this.#refreshInBackground(key, factory, options, lease)
      const soft = options.softTimeoutMs ?? 0
      if (soft === 0) return { done: true, value, force }
      const settled = await Promise.race([
        refresh.catch(() => value),
        new Promise<T>((r) => setTimeout(() => r(value), soft).unref()),
      ])
      return { done: true, value: settled, force }
    }
    // One getOrSet is one miss, however many rounds it waits for another process's loader.
    if (first) stats.misses++
    if (leased) return { done: true, value: await this.#loadAsOwner(key, factory, options, lease), force }
    return { done: false, force }
  }

  async #runFactory<T>(
    key: string,
    factory: Factory<T>,
    options: GetOrSetOptions,
  ): Promise<{ value: T; ms: number }> {
    this.tiers.entries.stats.factoryCalls++
    const started = performance.now()
    const run = Promise.resolve().then(factory)
    const value = options.hardTimeoutMs
      ? await withTimeout(run, options.hardTimeoutMs, `cache factory for ${JSON.stringify(key)}`)
      : await run
    return { value, ms: performance.now() - started }
  }

  /** Stores the factory's value as the lease holder. A value the codec refuses throws (InvalidArgumentError). */
  async #store<T>(key: string, value: T, ms: number, options: GetOrSetOptions, lease: string): Promise<void> {
    const { remote, entries } = this.tiers
    const negative = value === undefined
    if (negative && options.negativeTtlMs === undefined) {
      await remote.releaseLease(key, lease)
      return
    }
    const set = this.resolveSet(negative ? { ...options, ttlMs: options.negativeTtlMs, graceMs: 0 } : options)
    const encoded = entries.encode(key, value, negative)
    try {
      await this.tiers.write(key, encoded, set, ms, lease)
    } catch (error) {
      // The value is good, Redis could not take it: serve it uncached, and let the next caller load.
      entries.failOpen('getOrSet.write', error)
      await remote.releaseLease(key, lease)
    }
  }

  /** Computes and stores the value as the lease holder; on any failure frees the lease for others. */
  async #loadAsOwner<T>(
    key: string,
    factory: Factory<T>,
    options: GetOrSetOptions,
    lease: string,
  ): Promise<T> {
    try {
      const { value, ms } = await this.#runFactory(key, factory, options)
      await this.#store(key, value, ms, options, lease)
      return value
    } catch (error) {
      await this.tiers.remote.releaseLease(key, lease)
      throw error
    }
  }

  #refreshInBackground<T>(
    key: string,
    factory: Factory<T>,
    options: GetOrSetOptions,
    lease: string,
  ): Promise<T> {
    this.tiers.entries.stats.refreshes++
    const refresh = this.#loadAsOwner(key, factory, options, lease)
    refresh.catch((error: unknown) => emit({ package: 'cache', event: 'refresh-failed', key, error }))
    return refresh
  }

  /** Redis could not run the read: serve a fresh value if a read-only look still works, else the factory's, uncached. */
  async #withoutLease<T>(
    key: string,
    factory: Factory<T>,
    options: GetOrSetOptions,
    error: unknown,
  ): Promise<T> {
    this.tiers.entries.failOpen('getOrSet', error)
    if (isOutOfMemoryError(error)) {
      // At maxmemory the lease cannot be written, but reads still work.
      const value = await this.tiers.read<T>(key).catch(() => undefined)
      if (value !== undefined) return value
    }
    const { value } = await this.#runFactory(key, factory, options)
    // Uncached, but refused all the same if the codec would refuse it: every call answers alike.
    if (value !== undefined) this.tiers.entries.encode(key, value, false)
    return value
  }

  async #earlyRefresh<T>(key: string, factory: Factory<T>, options: GetOrSetOptions): Promise<void> {
    const lease = randomUUID()
    try {
      if (await this.tiers.remote.takeLease(key, lease))
        await this.#refreshInBackground(key, factory, options, lease).catch(() => {})
    } catch (error) {
      this.tiers.entries.failOpen('earlyRefresh', error)
    }
  }
}
