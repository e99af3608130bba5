// What users call. The kit that pattern packages share lives in `@rp/core/kit`.
export { isCluster, masters, type RedisClient } from './client.js'
export {
  blockingClient,
  type CreateRedisOptions,
  createRedis,
  type HostPort,
  type ResolvedConnection,
  resolveConnection,
} from './connection.js'
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
export type { CoreEvent } from './events.js'
export { type HealthReport, health } from './health.js'
export type { Hold, ReleaseOutcome } from './hold.js'
export { parseInfo } from './info.js'
export {
  EVENT_CHANNEL,
  OPERATION_CHANNEL,
  type OperationEvent,
  type RpEvent,
  TRACING_CHANNEL,
  type TraceContext,
} from './instrumentation.js'
export { escapeGlob, escapeKeyPart, type Keyspace, keyspace, unescapeKeyPart } from './keys.js'
export type { Logger } from './logger.js'
export {
  FRAGMENTATION_WARNING_RATIO,
  type MemoryReport,
  memory,
  memoryWarnings,
  type NodeMemory,
} from './memory.js'
export { type DeleteByPatternOptions, deleteByPattern, type ScanOptions, scanKeys } from './scan.js'
export {
  type BatchOption,
  defineScript,
  type Script,
  type ScriptArg,
  type ScriptDefinition,
  type ScriptRunOptions,
} from './script.js'
export {
  installShutdownHandlers,
  type ShutdownHandlerOptions,
  type ShutdownOptions,
  type ShutdownResult,
  shutdown,
} from './shutdown.js'
