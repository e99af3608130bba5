import type { Response } from 'express'

const HEARTBEAT_MS = 15_000
const RECENT_EVENTS = 40
const MAX_BUFFERED_BYTES = 256 * 1024

/**
 * Server-Sent Events to every open page of this instance. Redis pub/sub feeds it once per
 * instance, not once per browser, so a thousand tabs cost one subscription.
 */
export class EventHub {
  /** Each open stream, with its client's address. */
  readonly #clients = new Map<Response, string>()
  readonly #recent: Array<{ event: string; data: unknown }> = []
  readonly #heartbeat: NodeJS.Timeout

  constructor() {
    this.#heartbeat = setInterval(() => {
      for (const res of this.#clients.keys()) this.#write(res, ': keep-alive\n\n')
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

  /** Open streams from one client address. */
  countFor(ip: string): number {
    let n = 0
    for (const owner of this.#clients.values()) if (owner === ip) n++
    return n
  }

  /** Adds a page's stream; `first` goes to it alone. */
  attach(res: Response, ip: string, first: { event: string; data: unknown }): void {
    res.writeHead(200, {
      'content-type': 'text/event-stream',
      'cache-control': 'no-cache, no-transform',
      connection: 'keep-alive',
      'x-accel-buffering': 'no',
    })
    // A dropped stream is retried by the browser after 1 s, so an outage heals without a reload.
    res.write(`retry: 1000\n\nevent: ${first.event}\ndata: ${JSON.stringify(first.data)}\n\n`)
    this.#clients.set(res, ip)
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
    for (const res of this.#clients.keys()) this.#write(res, frame)
  }

  /** A page that stopped reading is dropped, not buffered for: its browser reconnects when it can. */
  #write(res: Response, frame: string): void {
    if (res.writableEnded) return
    if (res.writableLength > MAX_BUFFERED_BYTES) {
      this.#clients.delete(res)
      res.destroy()
      return
    }
    res.write(frame)
  }

  close(): void {
    clearInterval(this.#heartbeat)
    for (const res of this.#clients.keys()) res.end()
    this.#clients.clear()
  }
}
