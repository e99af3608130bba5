import type { Context, MiddlewareHandler } from 'hono'
import { createDecider, type RateLimitMiddlewareOptions } from './shared.js'

export { byUser, ipKey, rateLimitHeaders } from './shared.js'

export interface HonoRateLimitOptions extends RateLimitMiddlewareOptions<Context> {
  /**
   * The client IP. Default: the Node adapter's socket address (`c.env.incoming`), else the first
   * X-Forwarded-For entry. Hono runs on many runtimes, so set this for yours.
   */
  ip?: (c: Context) => string | undefined
}

function defaultIp(c: Context): string | undefined {
  const incoming = (c.env as { incoming?: { socket?: { remoteAddress?: string } } } | undefined)?.incoming
  return incoming?.socket?.remoteAddress ?? c.req.header('x-forwarded-for')?.split(',')[0]?.trim()
}

/** Hono middleware: `app.use(rateLimit({ limiter }))`. */
export function rateLimit(options: HonoRateLimitOptions): MiddlewareHandler {
  const decide = createDecider(options)
  const ipOf = options.ip ?? defaultIp
  return async (c, next) => {
    const { result, headers, body } = await decide(c, ipOf(c) ?? 'unknown')
    if (!result) return next()
    for (const [name, value] of Object.entries(headers)) c.header(name, value)
    if (!result.allowed) return c.json(body as object, 429)
    await next()
  }
}
