import type { Response } from 'express'

const HEARTBEAT_MS = 15_000
const RECENT_EVENTS = 40

/**
 * Server-Sent Events to every open page of this instance. Redis pub/sub feeds it once per
 * instance, not once per browser, so a thousand tabs cost one subscription.
 */
export class EventHub {
  readonly #clients = new Set<Response>()
  readonly #recent: Array<{ event: string; data: unknown }> = []
  readonly #heartbeat: NodeJS.Timeout

  constructor() {
    this.#heartbeat = setInterval(() => {
      for (const res of this.#clients) if (!res.writableEnded) res.write(': keep-alive\n\n')
    }, HEARTBEAT_MS)
    this.#heartbeat.unref()
  }

  get size(): number {
    return this.#clients.size
  }

  /** Instrumentation events, newest last, for the dashboard's first paint. */
  get recent(): ReadonlyArray<{ event: string; data: unknown }> {
    return this.#recent
  }

  attach(res: Response): void {
    res.writeHead(200, {
      'content-type': 'text/event-stream',
      'cache-control': 'no-cache, no-transform',
      connection: 'keep-alive',
      'x-accel-buffering': 'no',
    })
    // A dropped stream is retried by the browser after 1 s, so an outage heals without a reload.
    res.write('retry: 1000\n\n')
    this.#clients.add(res)
    res.on('close', () => this.#clients.delete(res))
    res.on('error', () => this.#clients.delete(res))
  }

  send(event: string, data: unknown, options: { remember?: boolean } = {}): void {
    if (options.remember) {
      this.#recent.push({ event, data })
      if (this.#recent.length > RECENT_EVENTS) this.#recent.shift()
    }
    let frame: string
    try {
      frame = `event: ${event}\ndata: ${JSON.stringify(data)}\n\n`
    } catch {
      return // not JSON (a cycle, a BigInt): dropped, never thrown into a listener
    }
    for (const res of this.#clients) if (!res.writableEnded) res.write(frame)
  }

  close(): void {
    clearInterval(this.#heartbeat)
    for (const res of this.#clients) res.end()
    this.#clients.clear()
  }
}
