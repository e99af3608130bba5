import { AbortError, InvalidArgumentError } from './errors.js'
import { describe, MAX_TIMER_MS, promised, requireSignal } from './validate.js'

/**
 * Resolves after `ms`, or rejects with AbortError as soon as `signal` aborts (at once if it already
 * has). The timer never keeps the process alive.
 */
export function delay(ms: number, signal?: AbortSignal, operation = 'delay'): Promise<void> {
  return promised(() => {
    if (typeof ms !== 'number' || !(ms >= 0 && ms <= MAX_TIMER_MS))
      throw new InvalidArgumentError(
        'ms',
        `must be a number of ms in [0, ${MAX_TIMER_MS}], got ${describe(ms)}`,
      )
    return sleep(ms, requireSignal('signal', signal), operation)
  })
}

function sleep(ms: number, signal: AbortSignal | undefined, operation: string): Promise<void> {
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
