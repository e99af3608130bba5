/**
 * Base class of every error an @rp package throws on purpose. `code` is stable across versions, so
 * callers can branch on it without matching messages.
 */
export class RpError extends Error {
  readonly code: string
  constructor(code: string, message: string, options?: { cause?: unknown }) {
    super(message, options)
    this.name = new.target.name
    this.code = code
  }
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
  constructor(operation: string, timeoutMs: number, options?: { cause?: unknown }) {
    super('RP_TIMEOUT', `${operation} did not finish within ${timeoutMs} ms`, options)
    this.timeoutMs = timeoutMs
  }
}

/** A Lua script failed inside Redis (a bug or a wrong key type), not a connectivity problem. */
export class ScriptError extends RpError {
  readonly script: string
  constructor(script: string, message: string, options?: { cause?: unknown }) {
    super('RP_SCRIPT_ERROR', `script ${script} failed: ${message}`, options)
    this.script = script
  }
}

/** The operation was cancelled through its AbortSignal. */
export class AbortError extends RpError {
  constructor(operation: string, options?: { cause?: unknown }) {
    super('RP_ABORTED', `${operation} was aborted`, options)
  }
}

const CONNECTION_ERROR =
  /ECONNREFUSED|ECONNRESET|EPIPE|ETIMEDOUT|EHOSTUNREACH|ENOTFOUND|Connection is closed|Stream isn't writeable|enableOfflineQueue|MaxRetriesPerRequest|Command timed out|CLUSTERDOWN|Failed to refresh slots cache|None of startup nodes is available|LOADING|TRYAGAIN|MASTERDOWN/i

/** Whether an ioredis error means "Redis is not reachable right now", as opposed to a bad command. */
export function isConnectionError(error: unknown): boolean {
  if (error instanceof RedisUnavailableError || error instanceof TimeoutError) return true
  return (
    error instanceof Error &&
    CONNECTION_ERROR.test(`${(error as NodeJS.ErrnoException).code ?? ''} ${error.message}`)
  )
}
