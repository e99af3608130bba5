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
    // Every failure, in the decision or in writing the answer (a body that cannot be serialized),
    // goes to next(err): nothing may become an unhandled rejection that exits the process.
    let verdict: ReturnType<typeof decide>
    try {
      verdict = decide(req, req.ip ?? req.socket?.remoteAddress ?? 'unknown')
    } catch (error) {
      next(error)
      return
    }
    verdict
      .then(({ result, headers, json }) => {
        if (!result) return next()
        res.set(headers)
        if (result.allowed) return next()
        res.status(429).type('application/json').send(json)
      })
      .catch((error: unknown) => {
        try {
          next(error)
        } catch {
          // next() itself threw: Express is already answering; nothing more can be done here.
        }
      })
  }
}
