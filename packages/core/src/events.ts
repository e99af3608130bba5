/**
 * The `rp:event` catalogue of @rp/core: what core itself publishes, and the events every package's
 * shared mechanisms publish under that package's name (`callback-error`, and the watchdog's `lost`
 * and `renewal-retry`). Each package adds its own catalogue (CacheEvent, RateLimitEvent, …).
 */
export type CoreEvent =
  | {
      package: 'core'
      event: `connection.${'connect' | 'ready' | 'close' | 'reconnecting' | 'end' | 'error' | 'node-error'}`
      mode: string
      delayMs?: number
      err?: Error
      node?: string
    }
  /** A listener or timer callback threw: the error is here instead of crashing the process. */
  | { package: string; event: 'callback-error'; callback: string; error: unknown }
  /** A hold under using() was lost; its work's signal was aborted with `error`. */
  | { package: string; event: 'lost'; id: string; error: Error }
  /** A renewal failed for a connection error and will be tried again before the abort deadline. */
  | { package: string; event: 'renewal-retry'; id: string; error: unknown }
  /** using() could not release its hold after the work; it lapses at its TTL. */
  | { package: string; event: 'release-failed'; id: string; error: unknown }
