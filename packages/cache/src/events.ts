import { publishEvent } from '@rp/core/kit'

/** Everything @rp/cache publishes on `rp:event`, besides core's shared events. */
export type CacheEvent =
  /** A key could not be read (wrong type, malformed, undecodable): a miss for that key only. */
  | { package: 'cache'; event: 'decode-error'; key: string; error?: unknown }
  /** Redis did not answer in time or is down: the cache failed open for this call. */
  | { package: 'cache'; event: 'redis-error'; operation: string; error: unknown }
  /** A background refresh's factory or write failed; the stale value stays served within grace. */
  | { package: 'cache'; event: 'refresh-failed'; key: string; error: unknown }
  /** Client-side caching is armed on a connection: L1 is trusted again. */
  | { package: 'cache'; event: 'tracking-armed'; prefix: string }
  /** Tracking could not be armed or re-synced: L1 is bypassed until it is. */
  | { package: 'cache'; event: 'tracking-failed'; prefix?: string; error: unknown }

export function emit(event: CacheEvent): void {
  publishEvent(event)
}
