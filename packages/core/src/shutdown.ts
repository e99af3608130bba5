import { constants } from 'node:os'
import type { Redis } from 'ioredis'
import { assertClient, isCluster, type RedisClient } from './client.js'
import { InvalidArgumentError } from './errors.js'
import { withTimeout } from './timeout.js'
import {
  describe,
  knownTimeoutOnly,
  promised,
  requireBoolean,
  requireFunction,
  requireKnownOptions,
  requireOptions,
  requireTimeoutMs,
} from './validate.js'

export interface ShutdownOptions {
  /** How long QUIT may take before the connection is dropped; default 5000. */
  timeoutMs?: number
}

export type ShutdownResult = 'quit' | 'disconnected' | 'already-closed'

function ended(client: RedisClient): Promise<void> {
  if (client.status === 'end') return Promise.resolve()
  return new Promise((resolve) => client.once('end', () => resolve()))
}

// core's one timeout, read as a value: shutdown never rejects.
function within<T>(promise: Promise<T>, ms: number): Promise<T | 'timeout'> {
  return withTimeout(promise, ms, 'shutdown').catch(() => 'timeout' as const)
}

async function closeOne(client: RedisClient, timeoutMs: number): Promise<ShutdownResult> {
  if (client.status === 'end') return 'already-closed'
  const closed = ended(client)
  // Resolved only once the socket is closed, not merely when QUIT was answered.
  const quit = client.quit().then(
    () => closed.then(() => 'quit' as const),
    () => 'failed' as const,
  )
  if ((await within(quit, timeoutMs)) === 'quit') return 'quit'
  // QUIT could not complete (server paused, unreachable): drop the socket so the process can exit.
  client.disconnect()
  // disconnect() only half-closes; a stopped server never finishes the close, so destroy the sockets.
  const nodes = isCluster(client) ? client.nodes() : [client as Redis]
  for (const node of nodes) node.stream?.destroy()
  await within(closed, 1_000)
  return 'disconnected'
}

/**
 * Sends QUIT to every client so in-flight replies drain, and disconnects any client that has not
 * finished after `timeoutMs`. Never rejects.
 */
export function shutdown(
  clients: RedisClient | readonly RedisClient[],
  options: ShutdownOptions = {},
): Promise<ShutdownResult[]> {
  return promised(() => {
    const timeoutMs = requireTimeoutMs('timeoutMs', knownTimeoutOnly(options).timeoutMs ?? 5_000)
    const list = clientList(clients)
    return Promise.all(list.map((c) => closeOne(c, timeoutMs)))
  })
}

function clientList(clients: RedisClient | readonly RedisClient[]): RedisClient[] {
  const list = Array.isArray(clients) ? [...clients] : [clients as RedisClient]
  list.forEach((c) => {
    assertClient(c)
  })
  return list
}

export interface ShutdownHandlerOptions extends ShutdownOptions {
  signals?: readonly NodeJS.Signals[]
  /** Runs before the clients close, e.g. to stop accepting HTTP requests. */
  beforeShutdown?: () => Promise<void> | void
  /** Runs after the clients closed, e.g. to stop an embedded server. */
  afterShutdown?: () => Promise<void> | void
  /** Call process.exit once done; default true. */
  exit?: boolean
}

/**
 * Installs SIGTERM/SIGINT handlers that run `shutdown` once and then exit. Returns a function that
 * removes them again.
 */
export function installShutdownHandlers(
  clients: RedisClient | readonly RedisClient[],
  options: ShutdownHandlerOptions = {},
): () => void {
  requireOptions('options', options)
  requireKnownOptions('options', options, ['signals', 'timeoutMs', 'beforeShutdown', 'afterShutdown', 'exit'])
  const signals = options.signals ?? ['SIGTERM', 'SIGINT']
  if (!Array.isArray(signals) || signals.length === 0)
    throw new InvalidArgumentError(
      'signals',
      `must be a non-empty array of signal names, got ${describe(signals)}`,
    )
  for (const s of signals) {
    if (typeof s !== 'string' || !(s in constants.signals) || s === 'SIGKILL' || s === 'SIGSTOP')
      throw new InvalidArgumentError('signals', `${describe(s)} is not a signal a process can handle`)
  }
  requireTimeoutMs('timeoutMs', options.timeoutMs ?? 5_000)
  if (options.beforeShutdown !== undefined) requireFunction('beforeShutdown', options.beforeShutdown)
  if (options.afterShutdown !== undefined) requireFunction('afterShutdown', options.afterShutdown)
  if (options.exit !== undefined) requireBoolean('exit', options.exit)
  clientList(clients)
  let started = false
  const handler = () => {
    // A second Ctrl-C while closing must not start a second shutdown.
    if (started) return
    started = true
    void (async () => {
      let failed = false
      try {
        await options.beforeShutdown?.()
      } catch {
        failed = true
      }
      try {
        await shutdown(clients, { timeoutMs: options.timeoutMs })
      } catch {
        failed = true
      }
      try {
        await options.afterShutdown?.()
      } catch {
        failed = true
      }
      if (options.exit !== false) process.exit(failed ? 1 : 0)
    })()
  }
  for (const s of signals) process.on(s, handler)
  return () => {
    for (const s of signals) process.off(s, handler)
  }
}
