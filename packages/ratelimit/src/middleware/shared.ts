import { isIPv4, isIPv6 } from 'node:net'
import {
  InvalidArgumentError,
  requireBoolean,
  requireFunction,
  requireKnownOptions,
  requireOptions,
} from '@rp/core/kit'
import { RateLimiter } from '../limiter.js'
import { MultiLimiter } from '../multi-limiter.js'
import type { RateLimitResult } from '../result.js'

export type Awaitable<T> = T | Promise<T>

/** Options every framework adapter takes; `Req` is the framework's request (or context). */
export interface RateLimitMiddlewareOptions<Req> {
  limiter: RateLimiter | MultiLimiter
  /**
   * The rate-limit key for a request; default `ip:<ipKey(ip)>`. A request whose IP the framework
   * cannot tell arrives with ip `'unknown'`, and by default all of those share one bucket: return
   * another key for them here (or throw, to fail the request) if that is not what you want.
   */
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

/** The 8 groups of an IPv6 address (embedded IPv4 tail and zone id handled), or null. */
function ipv6Groups(ip: string): number[] | null {
  const address = ip.replace(/%.*$/, '')
  if (!isIPv6(address)) return null
  let text = address
  const v4 = /(\d+)\.(\d+)\.(\d+)\.(\d+)$/.exec(text)
  if (v4) {
    const [a, b, c, d] = v4.slice(1).map(Number) as [number, number, number, number]
    text = `${text.slice(0, v4.index)}${((a << 8) | b).toString(16)}:${((c << 8) | d).toString(16)}`
  }
  const [head = '', tail] = text.split('::')
  const left = head ? head.split(':') : []
  const right = tail ? tail.split(':') : []
  const groups =
    tail === undefined ? left : [...left, ...Array(8 - left.length - right.length).fill('0'), ...right]
  return groups.length === 8 ? groups.map((g) => Number.parseInt(g, 16)) : null
}

/**
 * The rate-limit key part for a client address: IPv4 as is; IPv4-mapped IPv6 (`::ffff:1.2.3.4`,
 * `::ffff:102:304`, `0:0:0:0:0:ffff:…`) as its IPv4 address; loopback `::1` as itself; any other
 * IPv6 as its /64 (one customer usually holds a whole /64, so limiting single addresses is
 * trivially evaded). Anything that is not an IP address is returned unchanged.
 */
export function ipKey(ip: string): string {
  if (isIPv4(ip)) return ip
  const g = ipv6Groups(ip)
  // Not an address (e.g. 'unknown'): kept apart from every real address's key.
  if (!g) return ip === 'unknown' ? ip : `raw:${ip}`
  const v4 = () => `${g[6]! >> 8}.${g[6]! & 255}.${g[7]! >> 8}.${g[7]! & 255}`
  const zero = (from: number, to: number) => g.slice(from, to).every((x) => x === 0)
  if (zero(0, 7)) return g[7] === 1 ? '::1' : `::${g[7]!.toString(16)}`
  // IPv4-mapped ::ffff:a.b.c.d, IPv4-translated ::ffff:0:a.b.c.d, IPv4-compatible ::a.b.c.d, and
  // NAT64 64:ff9b::a.b.c.d all carry one IPv4 client each.
  if (zero(0, 5) && g[5] === 0xffff) return v4()
  if (zero(0, 4) && g[4] === 0xffff && g[5] === 0) return v4()
  if (zero(0, 6)) return v4()
  if (g[0] === 0x64 && g[1] === 0xff9b && zero(2, 6)) return v4()
  return `${g
    .slice(0, 4)
    .map((x) => x.toString(16))
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

/**
 * A policy name as it may appear in a header: printable ASCII without quote or backslash. Anything
 * else (a prefix such as '限流') is percent-encoded byte by byte, so a header can always be set.
 */
function headerToken(name: string): string {
  if (/^[ -~]*$/.test(name) && !/["%]/.test(name)) return name
  return Array.from(Buffer.from(name, 'utf8'), (b) =>
    b >= 0x20 && b <= 0x7e && b !== 0x22 && b !== 0x5c && b !== 0x25
      ? String.fromCharCode(b)
      : `%${b.toString(16).toUpperCase().padStart(2, '0')}`,
  ).join('')
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
  requireKnownOptions('options', requireOptions('options', options), ['standardHeaders', 'legacyHeaders'])
  const headers: Record<string, string> = {}
  const list = policies(limiter)
  const results = 'results' in result ? (result.results as RateLimitResult[]) : [result]
  if (options.standardHeaders !== false) {
    headers['RateLimit-Policy'] = list
      .map((l) => `"${headerToken(l.options.prefix)}";q=${l.options.limit};w=${seconds(l.options.windowMs)}`)
      .join(', ')
    headers.RateLimit = list
      .map(
        (l, i) =>
          `"${headerToken(l.options.prefix)}";r=${results[i]?.remaining ?? 0};t=${seconds((results[i]?.resetAt ?? now) - now)}`,
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
  /** The 429 body, already serialized: a body() that cannot be serialized fails the decision, not the response. */
  json: string | null
}

/** The framework-independent part of every adapter. */
/** The options every adapter takes; an adapter passes the ones it adds (Hono: ip, trustProxy). */
const MIDDLEWARE_OPTIONS = ['limiter', 'key', 'skip', 'cost', 'standardHeaders', 'legacyHeaders', 'body']

export function createDecider<Req>(
  options: RateLimitMiddlewareOptions<Req>,
  adapterOptions: readonly string[] = [],
) {
  requireOptions('options', options)
  requireKnownOptions('options', options, [...MIDDLEWARE_OPTIONS, ...adapterOptions])
  for (const name of ['standardHeaders', 'legacyHeaders'] as const)
    if (options[name] !== undefined) requireBoolean(name, options[name])
  if (!(options.limiter instanceof RateLimiter || options.limiter instanceof MultiLimiter)) {
    throw new InvalidArgumentError('limiter', 'must be a RateLimiter or MultiLimiter')
  }
  for (const name of ['key', 'skip', 'cost', 'body'] as const)
    if (options[name] !== undefined) requireFunction(name, options[name])
  const { limiter } = options
  const headerOptions = { standardHeaders: options.standardHeaders, legacyHeaders: options.legacyHeaders }
  const keyOf = options.key ?? ((_req: Req, ip: string) => `ip:${ipKey(ip)}`)
  return async (req: Req, ip: string): Promise<Verdict> => {
    if (options.skip && (await options.skip(req))) return { result: null, headers: {}, json: null }
    const key = await keyOf(req, ip)
    const cost = options.cost ? await options.cost(req) : 1
    const result = await limiter.limit(key, { cost })
    return {
      result,
      headers: rateLimitHeaders(limiter, result, headerOptions),
      json: result.allowed ? null : JSON.stringify((options.body ?? defaultBody)(result)),
    }
  }
}
