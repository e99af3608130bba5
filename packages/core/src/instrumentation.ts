import { channel, tracingChannel } from 'node:diagnostics_channel'

/** Summary of every finished operation: subscribe here for metrics. */
export const OPERATION_CHANNEL = 'rp:operation'
/** Notable events that are not operations: reconnects, decode failures, lost locks, fallbacks. */
export const EVENT_CHANNEL = 'rp:event'
/**
 * TracingChannel name: `tracing:rp:start|end|asyncStart|asyncEnd|error`, the shape OpenTelemetry
 * and APM agents subscribe to without patching.
 */
export const TRACING_CHANNEL = 'rp'

export interface OperationEvent {
  /** Package without scope, e.g. `ratelimit`. */
  readonly package: string
  /** e.g. `limit`, `acquire`, `getOrSet`. */
  readonly operation: string
  readonly durationMs: number
  /** `ok`, `error`, or a package-specific word such as `denied`, `hit`, `miss`, `fallback`. */
  readonly outcome: string
  readonly attributes?: Readonly<Record<string, unknown>>
  readonly error?: unknown
}

export interface RpEvent {
  readonly package: string
  readonly event: string
  readonly [field: string]: unknown
}

export interface TraceContext {
  readonly package: string
  readonly operation: string
  readonly attributes?: Readonly<Record<string, unknown>>
}

const operations = channel(OPERATION_CHANNEL)
const events = channel(EVENT_CHANNEL)
const tracing = tracingChannel<unknown, TraceContext & object>(TRACING_CHANNEL)

/**
 * Runs `fn` as an instrumented operation. When nobody subscribes it is a plain call, so the hot path
 * pays nothing for instrumentation it does not use.
 */
export function instrument<T>(
  context: TraceContext,
  fn: () => Promise<T>,
  outcomeOf?: (result: T) => string,
): Promise<T> {
  if (!operations.hasSubscribers && !tracing.hasSubscribers) return fn()
  const started = performance.now()
  const publish = (outcome: string, error?: unknown) => {
    if (!operations.hasSubscribers) return
    const event: OperationEvent = {
      package: context.package,
      operation: context.operation,
      durationMs: performance.now() - started,
      outcome,
      ...(context.attributes ? { attributes: context.attributes } : {}),
      ...(error === undefined ? {} : { error }),
    }
    operations.publish(event)
  }
  const run = tracing.hasSubscribers ? () => tracing.tracePromise(fn, { ...context }) : fn
  return run().then(
    (result) => {
      publish(outcomeOf ? outcomeOf(result) : 'ok')
      return result
    },
    (error: unknown) => {
      publish('error', error)
      throw error
    },
  )
}

/** Publishes a non-operation event; free when nobody listens. */
export function publishEvent(event: RpEvent): void {
  if (events.hasSubscribers) events.publish(event)
}
