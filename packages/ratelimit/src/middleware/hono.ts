import { requireFunction, requireNonNegativeInteger } from '@rp/core/kit'
import type { Context, MiddlewareHandler } from 'hono'
import { createDecider, type RateLimitMiddlewareOptions } from './shared.js'

export { byUser, ipKey, rateLimitHeaders } from './shared.js'

export interface HonoRateLimitOptions extends RateLimitMiddlewareOptions<Context> {
  /**
   * The client IP. Default: the Node adapter's socket address (`c.env.incoming`), and nothing
   * else: a header the client controls is never trusted by default. Hono runs on many runtimes
   * (Bun, Deno, Workers), so set this for yours, e.g. with hono's `getConnInfo`.
   */
  ip?: (c: Context) => string | undefined
  /**
   * How many reverse proxies you run in front of the app. With n > 0 the client IP is the n-th
   * X-Forwarded-For entry from the right (the one your outermost proxy appended), never the
   * client-written leftmost one. Default 0: X-Forwarded-For is ignored.
   */
  trustProxy?: number
}

function socketIp(c: Context): string | undefined {
  const incoming = (c.env as { incoming?: { socket?: { remoteAddress?: string } } } | undefined)?.incoming
  return incoming?.socket?.remoteAddress
}

function forwardedIp(c: Context, hops: number): string | undefined {
  const entries = (c.req.header('x-forwarded-for') ?? '')
    .split(',')
    .map((e) => e.trim())
    .filter(Boolean)
  return entries.length >= hops ? entries[entries.length - hops] : undefined
}

/** Hono middleware: `app.use(rateLimit({ limiter }))`. */
export function rateLimit(options: HonoRateLimitOptions): MiddlewareHandler {
  const decide = createDecider(options, ['ip', 'trustProxy'])
  if (options.ip !== undefined) requireFunction('ip', options.ip)
  const hops = requireNonNegativeInteger('trustProxy', options.trustProxy ?? 0)
  const ipOf = options.ip ?? (hops > 0 ? (c: Context) => forwardedIp(c, hops) : socketIp)
  return async (c, next) => {
    const { result, headers, json } = await decide(c, ipOf(c) ?? 'unknown')
    if (!result) return next()
    for (const [name, value] of Object.entries(headers)) c.header(name, value)
    if (!result.allowed) return c.body(json ?? 'null', 429, { 'content-type': 'application/json' })
    await next()
  }
}
