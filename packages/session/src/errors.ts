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

/** The session's data would exceed `maxBytes` once encoded; nothing was written. */
export class SessionTooLargeError extends RpError {
  readonly bytes: number
  readonly maxBytes: number
  constructor(bytes: number, maxBytes: number) {
    super(
      'RP_SESSION_TOO_LARGE',
      `the session's data would take ${bytes} bytes, more than maxBytes (${maxBytes})`,
    )
    this.bytes = bytes
    this.maxBytes = maxBytes
  }
}
