import { publishEvent } from './instrumentation.js'

/**
 * Wraps an event listener or timer callback so that nothing it throws, or rejects with, can become
 * an uncaught exception or an unhandled rejection in the host process: the error is published as
 * an `rp:event` `callback-error` instead. Every listener and timer inside a package goes through it.
 */
// biome-ignore lint/suspicious/noExplicitAny: listeners take whatever their emitter passes.
export function guarded<A extends any[]>(pkg: string, callback: string, fn: (...args: A) => unknown) {
  return (...args: A): void => {
    try {
      const result = fn(...args)
      if (result && typeof (result as Promise<unknown>).then === 'function')
        (result as Promise<unknown>).then(undefined, (error: unknown) =>
          reportCallbackError(pkg, callback, error),
        )
    } catch (error) {
      reportCallbackError(pkg, callback, error)
    }
  }
}

/** A callback's error as a callback-error event: what guarded() does with what it catches. */
export function reportCallbackError(pkg: string, callback: string, error: unknown): void {
  try {
    publishEvent({ package: pkg, event: 'callback-error', callback, error })
  } catch {
    // A subscriber that throws must not turn the report itself into an uncaught exception.
  }
}
