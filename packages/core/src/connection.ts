import type { ConnectionOptions as TlsOptions } from 'node:tls'
import { Cluster, type ClusterOptions, Redis, type RedisOptions } from 'ioredis'
import { guarded } from './callbacks.js'
import type { RedisClient } from './client.js'
import { InvalidArgumentError } from './errors.js'
import { publishEvent } from './instrumentation.js'
import type { Logger } from './logger.js'
import {
  describe,
  requireBoolean,
  requireIntegerInRange,
  requireKnownOptions,
  requireNonEmptyString,
  requireNonNegativeInteger,
  requireOptions,
  requirePositiveInteger,
  requireTimeoutMs,
} from './validate.js'

export interface HostPort {
  host: string
  port: number
}

export interface CreateRedisOptions {
  /** `redis://` or `rediss://` (TLS) URL; user, password and db in the URL are used. */
  url?: string
  host?: string
  port?: number
  username?: string
  password?: string
  db?: number
  /** true for TLS with default settings, or Node TLS options. */
  tls?: boolean | TlsOptions
  /** Sentinel mode: the sentinels to ask and the monitored master's name. */
  sentinels?: HostPort[]
  sentinelName?: string
  /** Cluster mode: seed nodes. */
  clusterNodes?: HostPort[]
  /**
   * Reject a command that has no reply after this long; default 2000. ioredis applies it to
   * blocking commands too (BLPOP, XREADGROUP BLOCK): run those on `blockingClient(redis)`.
   */
  commandTimeoutMs?: number
  /** Give up a connection attempt after this long; default 5000. */
  connectTimeoutMs?: number
  /** Reconnect attempts a queued command survives before it is rejected; default 2. */
  maxRetriesPerRequest?: number
  /** Queue commands issued while disconnected (bounded by maxRetriesPerRequest); default true. */
  enableOfflineQueue?: boolean
  /**
   * ioredis auto-pipelining: commands issued in one event-loop tick go out as one write. Default
   * false: in bench/ it did not help script-heavy workloads (each @rp operation is one EVALSHA).
   */
  autoPipelining?: boolean
  /** Reconnect backoff: full jitter over min(capMs, baseMs * 2^attempt); defaults 100 and 3000. */
  reconnect?: { baseMs?: number; capMs?: number }
  /** Receives connection lifecycle events; nothing is printed without one. */
  logger?: Logger
  /** Read settings from here instead of process.env. */
  env?: Record<string, string | undefined>
  /** Escape hatch: merged last into the ioredis options. */
  redisOptions?: RedisOptions
}

/** Resolved connection settings: explicit options win over the environment. */
export interface ResolvedConnection {
  mode: 'standalone' | 'sentinel' | 'cluster'
  host: string
  port: number
  username?: string
  password?: string
  db?: number
  tls?: TlsOptions
  sentinels?: HostPort[]
  sentinelName?: string
  clusterNodes?: HostPort[]
}

function parseHostPorts(name: string, value: string): HostPort[] {
  return value
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean)
    .map((entry) => {
      const at = entry.lastIndexOf(':')
      const host = at > 0 ? entry.slice(0, at) : entry
      const port = at > 0 ? Number(entry.slice(at + 1)) : 6379
      if (!host || !Number.isInteger(port) || port <= 0 || port > 65_535) {
        throw new InvalidArgumentError(
          name,
          `expected host:port[,host:port...], got ${JSON.stringify(value)}`,
        )
      }
      return { host, port }
    })
}

function parseInteger(name: string, value: string | undefined): number | undefined {
  if (value === undefined || value === '') return undefined
  const n = Number(value)
  if (!Number.isInteger(n) || n < 0)
    throw new InvalidArgumentError(name, `must be a non-negative integer, got ${JSON.stringify(value)}`)
  return n
}

function parseBoolean(name: string, value: string | undefined): boolean | undefined {
  if (value === undefined || value === '') return undefined
  if (/^(1|true|yes|on)$/i.test(value)) return true
  if (/^(0|false|no|off)$/i.test(value)) return false
  throw new InvalidArgumentError(name, `must be true or false, got ${JSON.stringify(value)}`)
}

/**
 * Pure: merges explicit options over REDIS_URL, REDIS_HOST, REDIS_PORT, REDIS_USERNAME,
 * REDIS_PASSWORD, REDIS_DB, REDIS_TLS, REDIS_SENTINELS + REDIS_SENTINEL_NAME, REDIS_CLUSTER_NODES.
 */
export function resolveConnection(options: CreateRedisOptions = {}): ResolvedConnection {
  requireOptions('options', options)
  requireKnownOptions('options', options, [
    'url',
    'host',
    'port',
    'username',
    'password',
    'db',
    'tls',
    'sentinels',
    'sentinelName',
    'clusterNodes',
    'commandTimeoutMs',
    'connectTimeoutMs',
    'maxRetriesPerRequest',
    'enableOfflineQueue',
    'autoPipelining',
    'reconnect',
    'logger',
    'env',
    'redisOptions',
  ])
  const env = options.env ?? process.env
  if (options.url !== undefined) requireNonEmptyString('url', options.url)
  if (options.host !== undefined) requireNonEmptyString('host', options.host)
  if (options.port !== undefined) requireIntegerInRange('port', options.port, 1, 65_535)
  if (options.db !== undefined) requireNonNegativeInteger('db', options.db)
  if (options.username !== undefined && typeof options.username !== 'string')
    throw new InvalidArgumentError('username', `must be a string, got ${describe(options.username)}`)
  if (options.password !== undefined && typeof options.password !== 'string')
    throw new InvalidArgumentError('password', `must be a string, got ${describe(options.password)}`)
  for (const [name, list] of [
    ['sentinels', options.sentinels],
    ['clusterNodes', options.clusterNodes],
  ] as const) {
    if (list === undefined) continue
    if (!Array.isArray(list))
      throw new InvalidArgumentError(name, `must be an array of { host, port }, got ${describe(list)}`)
    list.forEach((node, i) => {
      if (typeof node === 'object' && node !== null)
        requireKnownOptions(`${name}[${i}]`, node, ['host', 'port'])
      requireNonEmptyString(`${name}[${i}].host`, node?.host)
      requireIntegerInRange(`${name}[${i}].port`, node?.port, 1, 65_535)
    })
  }
  const resolved: ResolvedConnection = { mode: 'standalone', host: '127.0.0.1', port: 6379 }
  const url = options.url ?? env.REDIS_URL
  if (url) {
    let parsed: URL
    try {
      parsed = new URL(url)
    } catch {
      throw new InvalidArgumentError('url', `not a valid URL: ${JSON.stringify(url)}`)
    }
    if (parsed.protocol !== 'redis:' && parsed.protocol !== 'rediss:') {
      throw new InvalidArgumentError('url', `must start with redis:// or rediss://, got ${parsed.protocol}//`)
    }
    resolved.host = parsed.hostname.replace(/^\[|\]$/g, '') || resolved.host
    resolved.port = parsed.port ? Number(parsed.port) : 6379
    if (parsed.username) resolved.username = decodeURIComponent(parsed.username)
    if (parsed.password) resolved.password = decodeURIComponent(parsed.password)
    const db = parsed.pathname.replace(/^\//, '')
    if (db) resolved.db = parseInteger('url', db)
    if (parsed.protocol === 'rediss:') resolved.tls = {}
  }
  const host = options.host ?? env.REDIS_HOST
  if (host) resolved.host = host
  const port = options.port ?? parseInteger('REDIS_PORT', env.REDIS_PORT)
  if (port !== undefined) resolved.port = requireIntegerInRange('REDIS_PORT', port, 1, 65_535)
  const username = options.username ?? env.REDIS_USERNAME
  if (username) resolved.username = username
  const password = options.password ?? env.REDIS_PASSWORD
  if (password) resolved.password = password
  const db = options.db ?? parseInteger('REDIS_DB', env.REDIS_DB)
  if (db !== undefined) resolved.db = db
  const tls = options.tls ?? parseBoolean('REDIS_TLS', env.REDIS_TLS)
  if (tls === true) resolved.tls = resolved.tls ?? {}
  else if (tls === false) delete resolved.tls
  else if (tls) resolved.tls = tls

  const sentinels =
    options.sentinels ??
    (env.REDIS_SENTINELS ? parseHostPorts('REDIS_SENTINELS', env.REDIS_SENTINELS) : undefined)
  const clusterNodes =
    options.clusterNodes ??
    (env.REDIS_CLUSTER_NODES ? parseHostPorts('REDIS_CLUSTER_NODES', env.REDIS_CLUSTER_NODES) : undefined)
  if (sentinels?.length && clusterNodes?.length) {
    throw new InvalidArgumentError(
      'sentinels',
      'cannot be combined with clusterNodes; choose Sentinel or Cluster',
    )
  }
  if (sentinels?.length) {
    const name = options.sentinelName ?? env.REDIS_SENTINEL_NAME
    if (!name)
      throw new InvalidArgumentError('sentinelName', 'is required with sentinels (REDIS_SENTINEL_NAME)')
    resolved.mode = 'sentinel'
    resolved.sentinels = sentinels
    resolved.sentinelName = name
  } else if (clusterNodes?.length) {
    resolved.mode = 'cluster'
    resolved.clusterNodes = clusterNodes
    if (resolved.db) throw new InvalidArgumentError('db', 'Redis Cluster has only database 0')
  }
  return resolved
}

/** Full-jitter exponential backoff (AWS architecture blog): spreads reconnect storms evenly. */
export function fullJitterBackoff(baseMs: number, capMs: number): (attempt: number) => number {
  return (attempt) => Math.floor(Math.random() * Math.min(capMs, baseMs * 2 ** Math.min(attempt, 30)))
}

function attachLifecycle(client: RedisClient, logger: Logger | undefined, mode: string): void {
  // A user's logger that throws must not crash the process from inside an ioredis event.
  const emit = (level: keyof Logger, event: string, extra: Record<string, unknown> = {}) =>
    guarded('core', `connection.${event}`, () => {
      publishEvent({ package: 'core', event: `connection.${event}`, mode, ...extra })
      logger?.[level]({ redis: mode, event, ...extra }, `redis ${event}`)
    })()
  client.on('connect', () => emit('debug', 'connect'))
  client.on('ready', () => emit('info', 'ready'))
  client.on('close', () => emit('debug', 'close'))
  client.on('reconnecting', (delayMs: number) => emit('warn', 'reconnecting', { delayMs }))
  client.on('end', () => emit('info', 'end'))
  // Listening for 'error' also stops ioredis from printing "Unhandled error event" itself.
  client.on('error', (error: Error) => emit('error', 'error', { err: error }))
  if (mode === 'cluster')
    client.on('node error', (error: Error, node: string) => emit('warn', 'node-error', { err: error, node }))
}

/**
 * An ioredis client with production defaults: bounded retries per command, a command timeout,
 * full-jitter reconnect backoff, and lifecycle events to an optional logger.
 *
 * Offline queue: on by default, so commands issued during a reconnect are sent once the link is
 * back; each command is rejected after `maxRetriesPerRequest` failed reconnects or
 * `commandTimeoutMs`, whichever comes first, so nothing queues forever.
 */
export function createRedis(options: CreateRedisOptions = {}): RedisClient {
  const conn = resolveConnection(options)
  const reconnect = requireOptions('reconnect', options.reconnect)
  requireKnownOptions('reconnect', reconnect, ['baseMs', 'capMs'])
  const backoff = fullJitterBackoff(
    requirePositiveInteger('reconnect.baseMs', reconnect.baseMs ?? 100),
    requirePositiveInteger('reconnect.capMs', reconnect.capMs ?? 3_000),
  )
  if (options.logger !== undefined && (typeof options.logger !== 'object' || options.logger === null))
    throw new InvalidArgumentError(
      'logger',
      `must be a pino-style logger object, got ${describe(options.logger)}`,
    )
  const base: RedisOptions = {
    commandTimeout: requireTimeoutMs('commandTimeoutMs', options.commandTimeoutMs ?? 2_000),
    connectTimeout: requireTimeoutMs('connectTimeoutMs', options.connectTimeoutMs ?? 5_000),
    maxRetriesPerRequest: requireNonNegativeInteger(
      'maxRetriesPerRequest',
      options.maxRetriesPerRequest ?? 2,
    ),
    enableOfflineQueue: requireBoolean('enableOfflineQueue', options.enableOfflineQueue ?? true),
    enableAutoPipelining: requireBoolean('autoPipelining', options.autoPipelining ?? false),
    retryStrategy: (attempt) => backoff(attempt),
    ...(conn.username ? { username: conn.username } : {}),
    ...(conn.password ? { password: conn.password } : {}),
    ...(conn.tls ? { tls: conn.tls } : {}),
  }
  let client: RedisClient
  if (conn.mode === 'cluster') {
    const clusterOptions: ClusterOptions = {
      redisOptions: { ...base, ...options.redisOptions },
      clusterRetryStrategy: (attempt) => backoff(attempt),
      enableOfflineQueue: base.enableOfflineQueue ?? true,
      enableAutoPipelining: base.enableAutoPipelining ?? false,
    }
    client = new Cluster(conn.clusterNodes!, clusterOptions)
  } else if (conn.mode === 'sentinel') {
    client = new Redis({
      ...base,
      sentinels: conn.sentinels!,
      name: conn.sentinelName!,
      ...(conn.db !== undefined ? { db: conn.db } : {}),
      sentinelRetryStrategy: (attempt) => backoff(attempt),
      ...options.redisOptions,
    })
  } else {
    client = new Redis({
      ...base,
      host: conn.host,
      port: conn.port,
      ...(conn.db !== undefined ? { db: conn.db } : {}),
      ...options.redisOptions,
    })
  }
  attachLifecycle(client, options.logger, conn.mode)
  return client
}

/**
 * A new connection like `redis` but without a command timeout, for blocking commands (BLPOP,
 * BRPOP, XREAD/XREADGROUP BLOCK): ioredis applies `commandTimeout` to them too, so on a
 * createRedis client a block longer than commandTimeoutMs would fail. Bound such calls with
 * their own BLOCK argument. The caller owns the connection and closes it.
 */
export function blockingClient(redis: RedisClient): RedisClient {
  if (redis instanceof Cluster) {
    return redis.duplicate([], {
      redisOptions: { ...redis.options.redisOptions, commandTimeout: undefined },
    } as ClusterOptions)
  }
  return (redis as Redis).duplicate({ commandTimeout: undefined })
}
