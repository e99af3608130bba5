import { AbortError } from './errors.js'

/**
 * Resolves after `ms`, or rejects with AbortError as soon as `signal` aborts (at once if it already
 * has). The timer never keeps the process alive.
 */
export function delay(ms: number, signal?: AbortSignal, operation = 'delay'): Promise<void> {
  if (signal?.aborted) return Promise.reject(new AbortError(operation, { cause: signal.reason }))
  return new Promise<void>((resolve, reject) => {
    const onAbort = () => {
      clearTimeout(timer)
      reject(new AbortError(operation, { cause: signal?.reason }))
    }
    const timer = setTimeout(
      () => {
        signal?.removeEventListener('abort', onAbort)
        resolve()
      },
      Math.max(0, ms),
    )
    timer.unref()
    signal?.addEventListener('abort', onAbort, { once: true })
  })
}
