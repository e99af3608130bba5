import { TimeoutError } from './errors.js'

/**
 * Settles with `promise`, or rejects with TimeoutError after `timeoutMs`. The losing promise's
 * rejection is observed, so a late failure never becomes an unhandled rejection.
 */
export function withTimeout<T>(promise: Promise<T>, timeoutMs: number, operation: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new TimeoutError(operation, timeoutMs)), timeoutMs)
    timer.unref?.()
  })
  promise.catch(() => {})
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer))
}
