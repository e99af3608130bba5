export { guarded } from './callbacks.js'
export { assertUsableClient, isCluster, masters, type RedisClient } from './client.js'
export {
  blockingClient,
  type CreateRedisOptions,
  createRedis,
  fullJitterBackoff,
  type HostPort,
  type ResolvedConnection,
  resolveConnection,
} from './connection.js'
export { delay } from './delay.js'
export {
  AbortError,
  HoldLostError,
  InvalidArgumentError,
  isConnectionError,
  isOutOfMemoryError,
  isRpError,
  RedisOutOfMemoryError,
  RedisUnavailableError,
  RpError,
  ScriptError,
  TimeoutError,
  toRpError,
  UnsupportedClientError,
  WaitTimeoutError,
} from './errors.js'
export { RedisGuard } from './guard.js'
export { type HealthReport, health } from './health.js'
export { createHold, Hold, type HoldOperations, type ReleaseOutcome, releasedIf } from './hold.js'
export { parseInfo } from './info.js'
export {
  EVENT_CHANNEL,
  instrument,
  OPERATION_CHANNEL,
  type OperationEvent,
  publishEvent,
  type RpEvent,
  TRACING_CHANNEL,
  type TraceContext,
} from './instrumentation.js'
export {
  escapeGlob,
  escapeGlobPart,
  escapeKeyPart,
  globMatcher,
  type Keyspace,
  keyspace,
  unescapeKeyPart,
} from './keys.js'
export { type LeaseGrant, type LeaseKeys, LeaseSet, type LeaseWait } from './lease-set.js'
export type { Logger } from './logger.js'
export {
  FRAGMENTATION_WARNING_RATIO,
  type MemoryReport,
  memory,
  memoryWarnings,
  type NodeMemory,
} from './memory.js'
export { Notifier } from './notifier.js'
export { type DeleteByPatternOptions, deleteByPattern, type ScanOptions, scanKeys } from './scan.js'
export { defineScript, type Script, type ScriptArg, type ScriptDefinition } from './script.js'
export {
  installShutdownHandlers,
  type ShutdownHandlerOptions,
  type ShutdownOptions,
  type ShutdownResult,
  shutdown,
} from './shutdown.js'
export { Deadlines, withTimeout } from './timeout.js'
export {
  MAX_TIMER_MS,
  promised,
  requireArray,
  requireBoolean,
  requireFunction,
  requireIntegerInRange,
  requireNonEmptyString,
  requireNonNegativeInteger,
  requireOneOf,
  requireOptions,
  requirePositiveInteger,
  requireSignal,
  requireStringArray,
  requireTimeoutMs,
} from './validate.js'
export { type WaitLoop, waitForRelease } from './wait.js'
export { type UsingOptions, Watchdog } from './watchdog.js'
