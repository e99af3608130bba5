import { randomUUID } from 'node:crypto'
import { AbortError, isOutOfMemoryError, type Notifier, WaitTimeoutError, withTimeout } from '@rp/core/kit'
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

  async run<T>(key: string, factory: Factory<T>, options: GetOrSetOptions): Promise<T> {
    const { remote, local, entries } = this.tiers
    const stats = entries.stats
    const deadline =
      options.hardTimeoutMs === undefined
        ? Number.POSITIVE_INFINITY
        : performance.now() + options.hardTimeoutMs
    let force = false
    for (let round = 0; ; round++) {
      const lease = randomUUID()
      // An announcement that lands while this read runs must still end the wait that follows it.
      const startedAt = performance.now()
      const generation = local.generation
      let found: Awaited<ReturnType<typeof remote.readOrLease>>
      try {
        found = await remote.readOrLease(key, lease, force)
      } catch (error) {
        return this.#withoutLease(key, factory, options, error)
      }
      const [raw, leased, corrupt] = found
      if (corrupt) entries.corrupt(key)
      const entry = raw ? entries.decode(key, raw) : null
      const value = (entry?.negative ? undefined : entry?.value) as T
      // Present but unreadable: like a miss, except that the next read must take the lease over it
      // (and overwrite it) even though it looks fresh.
      if (raw && !entry) force = true

      if (raw && entry && entry.freshMs > 0) {
        stats.hits++
        local.set(key, raw[0], raw[1], raw[2], tagNames(raw[4]), generation)
        if (
          options.earlyRefresh &&
          entry.factoryMs > 0 &&
          -entry.factoryMs * Math.log(Math.random()) >= entry.freshMs
        )
          void this.#earlyRefresh(key, factory, options)
        return value
      }
      if (entry) {
        // Stale, within grace.
        stats.staleHits++
        if (!leased) return value
        const refresh = this.#refreshInBackground(key, factory, options, lease)
        const soft = options.softTimeoutMs ?? 0
        if (soft === 0) return value
        return Promise.race([
          refresh.catch(() => value),
          new Promise<T>((r) => setTimeout(() => r(value), soft).unref()),
        ])
      }
      stats.misses++
      if (leased) return this.#loadAsOwner(key, factory, options, lease)
      // Another process is loading: wait for its announcement (or the lease to lapse), then read again.
      const left = deadline - performance.now()
      if (left <= 0) throw hardTimeout(key, options.hardTimeoutMs ?? 0)
      const channel = remote.keys.loadedChannel
      await this.notifier.listen(channel, Math.max(1, Math.min(Math.ceil(left), this.timeoutMs)))
      if (round === 0) continue
      await this.notifier.wait(channel, Math.min(left, 250), { message: key, since: startedAt })
    }
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
