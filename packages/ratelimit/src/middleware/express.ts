import type { NextFunction, Request, RequestHandler, Response } from 'express'
import { createDecider, type RateLimitMiddlewareOptions } from './shared.js'

export { byUser, ipKey, rateLimitHeaders } from './shared.js'

/**
 * Express middleware. The client IP is `req.ip`, so set Express's `trust proxy` when behind a proxy.
 * A denied request gets 429, Retry-After and a JSON body; errors go to `next(err)`.
 */
export function rateLimit(options: RateLimitMiddlewareOptions<Request>): RequestHandler {
  const decide = createDecider(options)
  return (req: Request, res: Response, next: NextFunction) => {
    decide(req, req.ip ?? req.socket.remoteAddress ?? 'unknown').then(({ result, headers, body }) => {
      if (!result) return next()
      res.set(headers)
      if (result.allowed) return next()
      res.status(429).json(body)
    }, next)
  }
}
