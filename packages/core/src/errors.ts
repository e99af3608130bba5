/**
 * Base class of every error an @rp package throws on purpose. `code` is stable across versions, so
 * callers can branch on it without matching messages.
 */
const MARKER = Symbol.for('@rp/core.error')

export class RpError extends Error {
  readonly code: string
  constructor(code: string, message: string, options?: { cause?: unknown }) {
    super(message, options)
    this.name = new.target.name
    this.code = code
    // Survives two installed copies of @rp/core, where `instanceof` silently fails.
    Object.defineProperty(this, MARKER, { value: true })
  }

  /** True for any @rp error, from this copy of @rp/core or another; with `code`, only that code. */
  static isInstance(error: unknown, code?: string): error is RpError {
    return (
      typeof error === 'object' &&
      error !== null &&
      (error as Record<symbol, unknown>)[MARKER] === true &&
      (code === undefined || (error as RpError).code === code)
    )
  }
}

/** `RpError.isInstance`, as a function. */
export function isRpError(error: unknown, code?: string): error is RpError {
  return RpError.isInstance(error, code)
}

/** A caller passed a value the API cannot accept; the message names the option and what is allowed. */
export class InvalidArgumentError extends RpError {
  readonly argument: string
  constructor(argument: string, message: string) {
    super('RP_INVALID_ARGUMENT', `${argument}: ${message}`)
    this.argument = argument
  }
}

/** The ioredis client is configured in a way @rp cannot work with safely (e.g. keyPrefix). */
export class UnsupportedClientError extends RpError {
  constructor(message: string) {
    super('RP_UNSUPPORTED_CLIENT', message)
  }
}

/** Redis could not be reached, or the connection dropped while a command was in flight. */
export class RedisUnavailableError extends RpError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('RP_REDIS_UNAVAILABLE', message, options)
  }
}

/** An operation did not finish within its time budget. */
export class TimeoutError extends RpError {
  readonly timeoutMs: number
  constructor(
    operation: string,
    timeoutMs: number,
    options?: { cause?: unknown; code?: string; message?: string },
  ) {
    super(
      options?.code ?? 'RP_TIMEOUT',
      options?.message ?? `${operation} did not finish within ${timeoutMs} ms`,
      options,
    )
    this.timeoutMs = timeoutMs
  }
}

/**
 * The parent of every "waited too long" error: a lock, permit, lease or cached value was not
 * available within `waitMs`. `resource` is what the caller named (a lock's resource, a semaphore's
 * name, a rate-limit or cache key), never an internal Redis key. Not a connection error: Redis
 * may have answered every attempt; `cause` holds the last connection error when there was one.
 */
export class WaitTimeoutError extends TimeoutError {
  readonly resource: string
  readonly waitMs: number
  constructor(
    resource: string,
    waitMs: number,
    detail = '',
    options?: { cause?: unknown; code?: string; what?: string },
  ) {
    super(`${options?.what ?? 'acquire'} '${resource}'`, waitMs, {
      cause: options?.cause,
      code: options?.code ?? 'RP_WAIT_TIMEOUT',
      message: `could not ${options?.what ?? 'acquire'} '${resource}' within ${waitMs} ms${detail ? `: ${detail}` : ''}`,
    })
    this.resource = resource
    this.waitMs = waitMs
  }
}

/**
 * Redis is at maxmemory with noeviction (or the policy cannot free enough): it refuses writes.
 * Reads still work. Counts as Redis being unavailable for writes, not as a per-key data error.
 */
export class RedisOutOfMemoryError extends RpError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('RP_REDIS_OOM', message, options)
  }
}

/**
 * Where in the script Redis says it failed: the line differs between a lone call and a batch (whose
 * wrapper runs the body), and a batch's error has no sha. The cause keeps Redis's own words.
 */
const SCRIPT_PLACE = /user_script:\d+: | script: [0-9a-f]{40}, on @user_script:\d+\.$/g

/**
 * A Lua script failed inside Redis for a reason tied to the data it touched (a key of the wrong
 * type, a malformed value) or a bug: a per-key problem, never a sign that Redis is down.
 */
export class ScriptError extends RpError {
  readonly script: string
  constructor(script: string, message: string, options?: { cause?: unknown }) {
    // The same message whether the call ran alone or in a batch.
    super('RP_SCRIPT_ERROR', `script ${script} failed: ${message.replace(SCRIPT_PLACE, '')}`, options)
    this.script = script
  }
}

/**
 * A hold (lock, permit, lease) was lost while work ran under it: it lapsed, or was taken over, or
 * no renewal succeeded in time. Work done under it may race with another holder.
 */
export class HoldLostError extends RpError {
  readonly resource: string
  constructor(resource: string, why: string, options?: { cause?: unknown; code?: string; what?: string }) {
    super(
      options?.code ?? 'RP_HOLD_LOST',
      `${options?.what ?? 'hold on'} '${resource}' was lost: ${why}`,
      options,
    )
    this.resource = resource
  }
}

/** The operation was cancelled through its AbortSignal. */
export class AbortError extends RpError {
  constructor(operation: string, options?: { cause?: unknown }) {
    super('RP_ABORTED', `${operation} was aborted`, options)
  }
}

// The second line: replies of a server that is up but cannot serve this call now, which pass on
// their own (a failover demoted the master we write to, a script holds Redis, a save fails, too few
// replicas, a resharding in flight). Like an outage, and unlike a data error, they say nothing
// about the key.
const CONNECTION_ERROR = new RegExp(
  [
    "ECONNREFUSED|ECONNRESET|EPIPE|ETIMEDOUT|EHOSTUNREACH|ENOTFOUND|Connection is closed|Stream isn't writeable|enableOfflineQueue|MaxRetriesPerRequest|Command timed out|CLUSTERDOWN|Failed to refresh slots cache|None of startup nodes is available|LOADING|TRYAGAIN|MASTERDOWN",
    'READONLY|MISCONF|NOREPLICAS|BUSY Redis is busy|Too many Cluster redirections',
  ].join('|'),
  'i',
)

/**
 * Whether an ioredis error means "Redis cannot answer this right now" (unreachable, or up but
 * unable to serve it for a while), as opposed to a bad command or a key's data.
 */
export function isConnectionError(error: unknown): boolean {
  if (isRpError(error)) return error.code === 'RP_REDIS_UNAVAILABLE' || error.code === 'RP_TIMEOUT'
  return (
    error instanceof Error &&
    CONNECTION_ERROR.test(`${(error as NodeJS.ErrnoException).code ?? ''} ${error.message}`)
  )
}

const OOM = /^OOM /
const AUTH = /^(NOAUTH|WRONGPASS|NOPERM)/

/** Whether Redis refused a write because it is out of memory. */
export function isOutOfMemoryError(error: unknown): boolean {
  if (isRpError(error)) return error.code === 'RP_REDIS_OOM'
  return error instanceof Error && OOM.test(error.message)
}

/**
 * The one mapping from whatever a Redis call rejected with to an @rp error, original as `cause`:
 * RpErrors pass through; connection failures and refused credentials become
 * RedisUnavailableError; OOM becomes RedisOutOfMemoryError; any other reply is a ScriptError (a
 * data error, per key). Non-errors are wrapped too, so nothing untyped leaves a package.
 */
export function toRpError(error: unknown, operation: string): RpError {
  if (isRpError(error)) return error
  const message = error instanceof Error ? error.message : String(error)
  if (isConnectionError(error) || AUTH.test(message))
    return new RedisUnavailableError(`${operation}: ${message}`, { cause: error })
  if (OOM.test(message)) return new RedisOutOfMemoryError(`${operation}: ${message}`, { cause: error })
  return new ScriptError(operation, message, { cause: error })
}
