/**
 * Stops sending to a Redis that keeps failing: after `threshold` consecutive failures the circuit
 * opens for a cooldown (doubling up to `maxCooldownMs`), then lets one probe through.
 */
export class CircuitBreaker {
  #failures = 0
  #openUntil = 0
  #cooldownMs: number
  #probing = false

  constructor(
    readonly threshold = 5,
    readonly baseCooldownMs = 1_000,
    readonly maxCooldownMs = 30_000,
  ) {
    this.#cooldownMs = baseCooldownMs
  }

  get open(): boolean {
    return this.#failures >= this.threshold && (performance.now() < this.#openUntil || this.#probing)
  }

  /** Whether a request may go to Redis now; claims the single probe when half-open. */
  allow(): boolean {
    if (this.#failures < this.threshold) return true
    if (performance.now() < this.#openUntil || this.#probing) return false
    this.#probing = true
    return true
  }

  success(): void {
    this.#failures = 0
    this.#probing = false
    this.#cooldownMs = this.baseCooldownMs
  }

  failure(): void {
    this.#failures++
    if (this.#failures >= this.threshold) {
      if (this.#probing) this.#cooldownMs = Math.min(this.#cooldownMs * 2, this.maxCooldownMs)
      this.#probing = false
      this.#openUntil = performance.now() + this.#cooldownMs
    }
  }
}
