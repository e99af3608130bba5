import { RpError } from '@rp/core'

/** The lock (or permit) could not be taken within waitMs. */
export class LockTimeoutError extends RpError {
  readonly resource: string
  readonly waitMs: number
  constructor(resource: string, waitMs: number, detail = '', options?: { cause?: unknown }) {
    super(
      'RP_LOCK_TIMEOUT',
      `could not acquire '${resource}' within ${waitMs} ms${detail ? `: ${detail}` : ''}`,
      options,
    )
    this.resource = resource
    this.waitMs = waitMs
  }
}

/** A held lock was lost: its TTL ran out, or renewal failed. Work done under it may race with another holder. */
export class LockLostError extends RpError {
  readonly resource: string
  readonly token: number
  constructor(resource: string, token: number, why: string, options?: { cause?: unknown }) {
    super('RP_LOCK_LOST', `lock '${resource}' (token ${token}) was lost: ${why}`, options)
    this.resource = resource
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
