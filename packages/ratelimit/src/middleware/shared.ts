import { isIPv6 } from 'node:net'
import { InvalidArgumentError } from '@rp/core'
import { RateLimiter } from '../limiter.js'
import { MultiLimiter } from '../multi-limiter.js'
import type { RateLimitResult } from '../result.js'

export type Awaitable<T> = T | Promise<T>

/** Options every framework adapter takes; `Req` is the framework's request (or context). */
export interface RateLimitMiddlewareOptions<Req> {
  limiter: RateLimiter | MultiLimiter
  /** The rate-limit key for a request; default: the client IP, IPv6 grouped by /64. */
  key?: (req: Req, ip: string) => Awaitable<string>
  /** Return true to let a request through without counting it. */
  skip?: (req: Req) => Awaitable<boolean>
  /** Units a request costs; default 1. */
  cost?: (req: Req) => Awaitable<number>
  /** `RateLimit-Policy` and `RateLimit` (IETF httpapi draft); default true. */
  standardHeaders?: boolean
  /** `X-RateLimit-Limit`, `-Remaining`, `-Reset` (epoch seconds); default false. */
  legacyHeaders?: boolean
  /** JSON body of the 429 response; default `{ error, retryAfterSeconds }`. */
  body?: (result: RateLimitResult) => unknown
}

/**
 * The /64 prefix for IPv6 (one customer usually holds a whole /64, so limiting single addresses is
 * trivially evaded) and the plain address for IPv4, including IPv4-mapped IPv6.
 */
export function ipKey(ip: string): string {
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(ip)
  if (mapped) return mapped[1]!
  if (!isIPv6(ip)) return ip
  const [head = '', tail = ''] = ip.split('::')
  const left = head ? head.split(':') : []
  const right = tail ? tail.split(':') : []
  const groups = ip.includes('::')
    ? [...left, ...Array(8 - left.length - right.length).fill('0'), ...right]
    : left
  return `${groups
    .slice(0, 4)
    .map((g) => Number.parseInt(g, 16).toString(16))
    .join(':')}::/64`
}

/** A key generator for signed-in users, falling back to the IP for anonymous requests. */
export function byUser<Req>(userId: (req: Req) => Awaitable<string | number | undefined | null>) {
  return async (req: Req, ip: string): Promise<string> => {
    const id = await userId(req)
    return id === undefined || id === null || id === '' ? `ip:${ipKey(ip)}` : `user:${id}`
  }
}

function policies(limiter: RateLimiter | MultiLimiter): RateLimiter[] {
  return limiter instanceof MultiLimiter ? [...limiter.limiters] : [limiter]
}

function seconds(ms: number): number {
  return Math.max(0, Math.ceil(ms / 1000))
}

/** Response headers for a result: the IETF draft fields, optionally the legacy ones, and Retry-After. */
export function rateLimitHeaders(
  limiter: RateLimiter | MultiLimiter,
  result: RateLimitResult,
  options: { standardHeaders?: boolean; legacyHeaders?: boolean } = {},
  now = Date.now(),
): Record<string, string> {
  const headers: Record<string, string> = {}
  const list = policies(limiter)
  const results = 'results' in result ? (result.results as RateLimitResult[]) : [result]
  if (options.standardHeaders !== false) {
    headers['RateLimit-Policy'] = list
      .map((l) => `"${l.options.prefix}";q=${l.options.limit};w=${seconds(l.options.windowMs)}`)
      .join(', ')
    headers.RateLimit = list
      .map(
        (l, i) =>
          `"${l.options.prefix}";r=${results[i]?.remaining ?? 0};t=${seconds((results[i]?.resetAt ?? now) - now)}`,
      )
      .join(', ')
  }
  if (options.legacyHeaders) {
    headers['X-RateLimit-Limit'] = String(result.limit)
    headers['X-RateLimit-Remaining'] = String(result.remaining)
    headers['X-RateLimit-Reset'] = String(Math.ceil(result.resetAt / 1000))
  }
  if (!result.allowed && Number.isFinite(result.retryAfterMs))
    headers['Retry-After'] = String(seconds(result.retryAfterMs))
  return headers
}

export function defaultBody(result: RateLimitResult): unknown {
  return {
    error: 'Too Many Requests',
    reason: result.reason ?? 'limit',
    retryAfterSeconds: Number.isFinite(result.retryAfterMs) ? seconds(result.retryAfterMs) : null,
  }
}

export interface Verdict {
  /** null when the request was skipped. */
  result: RateLimitResult | null
  headers: Record<string, string>
  body: unknown
}

/** The framework-independent part of every adapter. */
export function createDecider<Req>(options: RateLimitMiddlewareOptions<Req>) {
  if (!(options?.limiter instanceof RateLimiter || options?.limiter instanceof MultiLimiter)) {
    throw new InvalidArgumentError('limiter', 'must be a RateLimiter or MultiLimiter')
  }
  const { limiter } = options
  const keyOf = options.key ?? ((_req: Req, ip: string) => `ip:${ipKey(ip)}`)
  return async (req: Req, ip: string): Promise<Verdict> => {
    if (options.skip && (await options.skip(req))) return { result: null, headers: {}, body: null }
    const key = await keyOf(req, ip)
    const cost = options.cost ? await options.cost(req) : 1
    const result = await limiter.limit(key, { cost })
    return {
      result,
      headers: rateLimitHeaders(limiter, result, options),
      body: result.allowed ? null : (options.body ?? defaultBody)(result),
    }
  }
}
