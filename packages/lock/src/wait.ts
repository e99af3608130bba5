import { type WaitLoop, waitForRelease } from '@rp/core'
import { LockTimeoutError } from './errors.js'

export interface LockWait<T> extends Omit<WaitLoop<T>, 'what' | 'timeout' | 'retryConnectionErrors'> {
  /** Names the resource in errors. */
  resource: string
  /** Why it timed out when Redis was fine, e.g. "all 5 permits held". */
  busy: string
}

/**
 * core's waitForRelease with the lock family's rules: connection errors are retried until waitMs,
 * and running out of time is a LockTimeoutError that says whether Redis or a holder was the cause.
 */
export function acquireWithWait<T>(loop: LockWait<T>): Promise<T> {
  const { resource, busy, waitMs } = loop
  return waitForRelease({
    ...loop,
    what: `acquire '${resource}'`,
    retryConnectionErrors: true,
    timeout: (lastError) =>
      new LockTimeoutError(
        resource,
        waitMs,
        lastError ? `Redis unavailable: ${(lastError as Error).message}` : busy,
        { cause: lastError },
      ),
  })
}
