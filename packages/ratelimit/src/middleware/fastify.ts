import type { FastifyReply, FastifyRequest, onRequestAsyncHookHandler } from 'fastify'
import { createDecider, type RateLimitMiddlewareOptions } from './shared.js'

export { byUser, ipKey, rateLimitHeaders } from './shared.js'

/**
 * A Fastify `onRequest` hook: `app.addHook('onRequest', rateLimit({ limiter }))`, or add it to a
 * route's `onRequest`. The client IP is `request.ip` (configure `trustProxy` behind a proxy).
 */
export function rateLimit(options: RateLimitMiddlewareOptions<FastifyRequest>): onRequestAsyncHookHandler {
  const decide = createDecider(options)
  return async (request: FastifyRequest, reply: FastifyReply) => {
    const { result, headers, json } = await decide(request, request.ip)
    if (!result) return
    reply.headers(headers)
    if (!result.allowed) return reply.code(429).type('application/json').send(json)
  }
}
