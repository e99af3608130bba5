import { HoldLostError, WaitTimeoutError } from '@rp/core/kit'

/** The lock (or permit, or hold) could not be taken within waitMs; `resource` is the name you gave. */
export class LockTimeoutError extends WaitTimeoutError {
  constructor(resource: string, waitMs: number, detail = '', options?: { cause?: unknown }) {
    super(resource, waitMs, detail, { ...options, code: 'RP_LOCK_TIMEOUT' })
  }
}

/**
 * A held lock (or permit, or hold) was lost: its TTL ran out, or renewal failed. Work done under it
 * may race with another holder. `token` is the lock's fencing token (0 for permits and holds).
 */
export class LockLostError extends HoldLostError {
  readonly token: number
  constructor(resource: string, token: number, why: string, options?: { cause?: unknown }) {
    super(resource, why, { ...options, code: 'RP_LOCK_LOST', what: token ? `lock (token ${token})` : 'lock' })
    this.token = token
  }
}

/** Redlock could not reach a majority of instances in time. */
export class RedlockQuorumError extends LockTimeoutError {
  readonly acquired: number
  readonly quorum: number
  constructor(
    resource: string,
    waitMs: number,
    acquired: number,
    quorum: number,
    options?: { cause?: unknown },
  ) {
    super(resource, waitMs, `Redlock reached ${acquired} of the ${quorum} instances a quorum needs`, options)
    this.acquired = acquired
    this.quorum = quorum
  }
}

/**
 * The `timeout` of a lock-family wait (core's waitForRelease): a LockTimeoutError that says whether
 * Redis or a holder was the cause.
 */
export function lockTimeout(resource: string, waitMs: number, busy: string): (lastError: unknown) => Error {
  return (lastError) =>
    new LockTimeoutError(
      resource,
      waitMs,
      lastError ? `Redis unavailable: ${(lastError as Error).message}` : busy,
      { cause: lastError },
    )
}
