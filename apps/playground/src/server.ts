import { createServer, type Server } from 'node:http'
import { health, memory, type RedisClient } from '@rp/core'
import type { Demos } from './demos.js'
import { page } from './page.js'

export interface PlaygroundOptions {
  redis: RedisClient
  /** Shown on the page: where the data comes from. */
  target: string
  demos: Demos
}

/** The playground's HTTP server; routes are added here as each pattern package lands. */
export function createPlayground({ redis, target, demos }: PlaygroundOptions): Server {
  return createServer(async (req, res) => {
    const json = (status: number, body: unknown) => {
      res.writeHead(status, { 'content-type': 'application/json' })
      res.end(JSON.stringify(body))
    }
    try {
      const url = new URL(req.url ?? '/', 'http://localhost')
      if (req.method === 'GET' && url.pathname === '/') {
        res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' })
        res.end(page)
      } else if (req.method === 'GET' && url.pathname === '/api/health') {
        json(200, { target, report: await health(redis) })
      } else if (req.method === 'GET' && url.pathname === '/api/memory') {
        json(200, { target, report: await memory(redis) })
      } else if (req.method === 'POST' && url.pathname === '/api/ratelimit') {
        const result = await demos.rateLimit(req.socket.remoteAddress ?? 'unknown')
        json(result.allowed ? 200 : 429, result)
      } else if (req.method === 'POST' && url.pathname === '/api/lock') {
        json(200, await demos.lock())
      } else if (req.method === 'GET' && url.pathname === '/api/cache') {
        json(200, await demos.cached())
      } else {
        json(404, { error: 'not found' })
      }
    } catch (error) {
      json(503, { error: (error as Error).message })
    }
  })
}
