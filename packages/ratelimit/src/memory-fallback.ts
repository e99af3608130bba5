import { BoundedMap } from '@rp/core/kit'

/**
 * In-process GCRA used only while Redis is unreachable, when the failure policy is
 * `{ fallback: 'memory' }`. Each process enforces the full limit on its own, so a fleet of N
 * processes admits up to N× the limit during the outage: availability with a bound.
 */
export class MemoryFallback {
  readonly #tat: BoundedMap<string, number>
  readonly #interval: number
  readonly #tolerance: number

  constructor(limit: number, windowMs: number, burst: number, maxKeys: number) {
    this.#interval = windowMs / limit
    this.#tolerance = burst * this.#interval
    // No expiry needed: a TAT in the past counts as now, so a stale entry admits like a missing one.
    this.#tat = new BoundedMap(maxKeys)
  }

  /** Decides for `cost` units; with `consume` false, only says whether they would be admitted. */
  limit(
    key: string,
    cost: number,
    consume = true,
  ): { allowed: boolean; remaining: number; resetAt: number; retryAfterMs: number } {
    const now = Date.now()
    const tat = Math.max(this.#tat.get(key) ?? now, now)
    const next = tat + cost * this.#interval
    if (next - now > this.#tolerance) {
      return {
        allowed: false,
        remaining: Math.max(0, Math.floor((this.#tolerance - (tat - now)) / this.#interval)),
        resetAt: Math.ceil(tat),
        retryAfterMs: Math.ceil(next - now - this.#tolerance),
      }
    }
    if (consume) this.#tat.set(key, next)
    return {
      allowed: true,
      remaining: Math.floor((this.#tolerance - (next - now)) / this.#interval),
      resetAt: Math.ceil(next),
      retryAfterMs: 0,
    }
  }
}
