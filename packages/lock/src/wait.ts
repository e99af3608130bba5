import { type WaitLoop, waitForRelease } from '@rp/core/kit'
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
  // Completed in place: copying the caller's fresh object with a spread cost more than the rest
  // of an uncontended acquire's client-side work.
  const full = loop as LockWait<T> & WaitLoop<T>
  full.what = `acquire '${loop.resource}'`
  full.retryConnectionErrors = true
  full.timeout = (lastError) =>
    new LockTimeoutError(
      loop.resource,
      loop.waitMs,
      lastError ? `Redis unavailable: ${(lastError as Error).message}` : loop.busy,
      { cause: lastError },
    )
  return waitForRelease(full)
}
