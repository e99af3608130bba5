/**
 * The pattern kit: what @rp packages share and users rarely need. The one call path (RedisGuard,
 * Deadlines), the wait loop and Notifier, the hold contract (Hold, LeaseSet, Watchdog), validators,
 * guarded callbacks and instrumentation. It also re-exports the whole user API, so a package
 * imports from one place.
 */

export { MAX_BATCH_CALLS, type Mergeable } from './batch.js'
export { BoundedMap } from './bounded-map.js'
export { guarded } from './callbacks.js'
export { assertUsableClient, nodeConnection } from './client.js'
export { fullJitterBackoff } from './connection.js'
export { delay } from './delay.js'
export { RedisGuard } from './guard.js'
export { createHold, Hold, type HoldOperations, releasedIf } from './hold.js'
export * from './index.js'
export { instrument, publishEvent } from './instrumentation.js'
export { escapeGlobPart, globMatcher } from './keys.js'
export { type LeaseGrant, type LeaseKeys, LeaseSet, type LeaseWait } from './lease-set.js'
export { Notifier } from './notifier.js'
export { Deadlines, withTimeout } from './timeout.js'
export {
  describe,
  MAX_TIMER_MS,
  promised,
  requireArray,
  requireBoolean,
  requireDurationMs,
  requireFunction,
  requireGivenOptions,
  requireIntegerInRange,
  requireJsonValue,
  requireKnownOptions,
  requireNonEmptyString,
  requireNonNegativeInteger,
  requireOneOf,
  requireOptions,
  requirePositiveInteger,
  requireSignal,
  requireStringArray,
  requireTimeoutMs,
  requireWellFormedString,
  toJson,
} from './validate.js'
export { type WaitLoop, waitForRelease } from './wait.js'
export { type UsingOptions, Watchdog } from './watchdog.js'
