import { guarded } from './callbacks.js'
import { AbortError, isConnectionError } from './errors.js'
import type { Hold } from './hold.js'
import { publishEvent } from './instrumentation.js'
import { promised, requireFunction } from './validate.js'

export interface UsingOptions {
  /** Aborting it before the hold is taken means `fn` never runs; after, it aborts `fn`'s signal. */
  signal?: AbortSignal | undefined
  /** Builds the error `fn`'s signal aborts with, and `using` rejects with, when the hold is lost. */
  lostError: (why: string, cause?: unknown) => Error
  /** Called (guarded) when the hold is lost, e.g. to emit an event. */
  onLost?: (error: Error) => void
}

interface Watched {
  hold: Hold
  /** When the next renewal is due (performance.now()); Infinity while one is in flight. */
  nextAt: number
  controller: AbortController
  options: UsingOptions
  lost?: Error
}

/**
 * On the monotonic clock, when the watchdog gives up on a hold: a third of its TTL before it may
 * lapse. By then `fn` has been told (its signal aborted), whatever a renewal in flight is doing, so
 * it still has that third to stop before anyone else can take what it held.
 */
function abortAt(w: Watched): number {
  // From the TTL of the last acquire or extend: an extend by the holder may have shortened it.
  return w.hold.validUntil - w.hold.lastTtlMs / 3
}

/**
 * Runs work under holds and keeps them alive: one timer for every hold it watches, armed for the
 * earliest renewal (every ttl/3) or abort deadline. A renewal that fails for a connection error is
 * retried while the deadline allows. So a renewal gets at most ttl/3, which is less than
 * `timeoutMs` when ttlMs < 3 × timeoutMs: the renewal is shortened rather than the TTL refused.
 */
export class Watchdog {
  readonly #pkg: string
  readonly #watched = new Map<Hold, Watched>()
  #timer: NodeJS.Timeout | null = null
  readonly #onTimer: () => void

  constructor(pkg: string) {
    this.#pkg = pkg
    this.#onTimer = guarded(pkg, 'watchdog', () => this.#tick())
  }

  /**
   * Takes a hold with `acquire`, runs `fn(signal, hold)` under it with renewals, and releases it
   * whatever happens. Rejects with `lostError(…)` once `fn` settles if the hold was lost meanwhile.
   */
  using<H extends Hold, T>(
    acquire: () => Promise<H>,
    fn: (signal: AbortSignal, hold: H) => Promise<T>,
    options: UsingOptions,
  ): Promise<T> {
    return promised(() => {
      requireFunction('fn', fn)
      return this.#using(acquire, fn, options)
    })
  }

  async #using<H extends Hold, T>(
    acquire: () => Promise<H>,
    fn: (signal: AbortSignal, hold: H) => Promise<T>,
    options: UsingOptions,
  ): Promise<T> {
    const hold = await acquire()
    const outer = options.signal
    if (outer?.aborted) {
      // Aborted while the acquire was in flight: never start fn on a signal already fired.
      await hold.release().catch(() => {})
      throw new AbortError('using', { cause: outer.reason })
    }
    const controller = new AbortController()
    const forward = () => controller.abort(outer?.reason)
    outer?.addEventListener('abort', forward, { once: true })
    const watched: Watched = { hold, nextAt: performance.now() + hold.ttlMs / 3, controller, options }
    this.#watched.set(hold, watched)
    // The holder's own extend (a shorter TTL, say) moves when the hold may lapse: renew a third of
    // that TTL from now at the latest, and re-arm the timer, or it would fire too late.
    hold.onExtended = () => {
      if (this.#watched.get(hold) !== watched) return
      if (watched.nextAt !== Number.POSITIVE_INFINITY)
        watched.nextAt = Math.min(watched.nextAt, performance.now() + hold.lastTtlMs / 3)
      this.#schedule()
    }
    this.#schedule()
    try {
      const result = await fn(controller.signal, hold)
      if (watched.lost) throw watched.lost
      return result
    } finally {
      outer?.removeEventListener('abort', forward)
      this.#unwatch(hold)
      await this.#release(hold)
    }
  }

  // A release that fails for a blip is tried again a few times (Hold allows it), so one lost
  // reply does not leave the hold taken for its whole TTL; past that it lapses on its own.
  async #release(hold: Hold): Promise<void> {
    for (const pause of [100, 300, 0]) {
      try {
        await hold.release()
        return
      } catch (error) {
        if (!isConnectionError(error) || pause === 0) {
          publishEvent({ package: this.#pkg, event: 'release-failed', id: hold.id, error })
          return
        }
        await new Promise((r) => setTimeout(r, pause).unref())
      }
    }
  }

  #unwatch(hold: Hold): void {
    hold.onExtended = null
    if (this.#watched.delete(hold) && this.#watched.size === 0 && this.#timer) {
      clearTimeout(this.#timer)
      this.#timer = null
    }
  }

  // A renewal in flight has nextAt = Infinity, but its hold's abort deadline still arms the timer.
  #schedule(): void {
    if (this.#timer) clearTimeout(this.#timer)
    this.#timer = null
    if (this.#watched.size === 0) return
    let next = Number.POSITIVE_INFINITY
    for (const w of this.#watched.values()) next = Math.min(next, w.nextAt, abortAt(w))
    this.#timer = setTimeout(this.#onTimer, Math.max(0, next - performance.now()))
    this.#timer.unref()
  }

  #tick(): void {
    this.#timer = null
    const now = performance.now()
    for (const w of [...this.#watched.values()]) {
      if (abortAt(w) <= now) this.#lose(w, 'no renewal succeeded before only a third of the TTL was left')
    }
    for (const w of [...this.#watched.values()]) {
      if (w.nextAt > now) continue
      w.nextAt = Number.POSITIVE_INFINITY
      w.hold.extend().then(
        (ok) => {
          if (this.#watched.get(w.hold) !== w) return
          if (ok) {
            w.nextAt = performance.now() + w.hold.lastTtlMs / 3
            this.#schedule()
          } else this.#lose(w, 'it expired or was taken over before renewal')
        },
        (error: unknown) => {
          if (this.#watched.get(w.hold) !== w) return
          // A blip (a reconnect, a slow reply) need not cost the hold: retry while the deadline allows.
          const retryAt = performance.now() + Math.max(50, Math.min(1_000, w.hold.ttlMs / 10))
          if (isConnectionError(error) && retryAt < abortAt(w)) {
            w.nextAt = retryAt
            publishEvent({ package: this.#pkg, event: 'renewal-retry', id: w.hold.id, error })
            this.#schedule()
          } else this.#lose(w, `renewal failed: ${(error as Error).message}`, error)
        },
      )
    }
    this.#schedule()
  }

  #lose(w: Watched, why: string, cause?: unknown): void {
    if (this.#watched.get(w.hold) !== w) return
    this.#watched.delete(w.hold)
    const error = w.options.lostError(why, cause)
    w.lost = error
    w.controller.abort(error)
    publishEvent({ package: this.#pkg, event: 'lost', id: w.hold.id, error })
    if (w.options.onLost) guarded(this.#pkg, 'lost', w.options.onLost)(error)
    this.#schedule()
  }

  /**
   * Stops renewing. Work still running under a hold is told (its signal aborts and its using()
   * rejects with the lost error), since nothing keeps its hold alive any more.
   */
  close(): void {
    for (const w of [...this.#watched.values()]) this.#lose(w, 'its owner was closed')
    if (this.#timer) clearTimeout(this.#timer)
    this.#timer = null
    this.#watched.clear()
  }
}
