import { RpError } from '@rp/core/kit'

/**
 * A compare-and-set update lost its race: the session's version was not the one expected.
 * `actualVersion` is the version that won; read again and retry if that is what you want.
 */
export class SessionConflictError extends RpError {
  readonly expectedVersion: number
  readonly actualVersion: number
  constructor(expectedVersion: number, actualVersion: number) {
    super(
      'RP_SESSION_CONFLICT',
      `session update expected version ${expectedVersion}, but the session is at version ${actualVersion}`,
    )
    this.expectedVersion = expectedVersion
    this.actualVersion = actualVersion
  }
}

/**
 * The session would grow past a limit once written: `maxBytes` of encoded data (field names
 * included), or the most top-level fields a session holds (`what: 'fields'`). Nothing was written.
 */
export class SessionTooLargeError extends RpError {
  /** The size the write would have reached, in `what`. */
  readonly size: number
  readonly limit: number
  readonly what: 'bytes' | 'fields'
  constructor(size: number, limit: number, what: 'bytes' | 'fields' = 'bytes') {
    super(
      'RP_SESSION_TOO_LARGE',
      what === 'bytes'
        ? `the session's data would take ${size} bytes, more than maxBytes (${limit})`
        : `the session would hold ${size} fields, more than ${limit}`,
    )
    this.size = size
    this.limit = limit
    this.what = what
  }
}
