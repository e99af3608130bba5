import { isCluster, masters, publishEvent, type RedisClient } from '@rp/core'
import { Redis } from 'ioredis'

/**
 * Server-assisted client-side caching (RESP2): one dedicated connection per master enables
 * `CLIENT TRACKING ON REDIRECT <own id> BCAST PREFIX <prefix>` and subscribes to
 * `__redis__:invalidate`, so a write by any client, redis-cli included, evicts the local copy.
 * Tracking state is lost with the connection, so after every (re)connect it is re-armed and the
 * local tier is flushed: invalidations sent while disconnected were lost.
 */
export class Tracker {
  readonly #connections: Redis[] = []
  readonly #ready = new Set<Redis>()
  #closed = false

  constructor(
    private readonly redis: RedisClient,
    private readonly prefix: string,
    private readonly onInvalidate: (keys: string[] | null) => void,
  ) {}

  /** True only while every connection is tracking: otherwise the local tier must not be trusted. */
  get active(): boolean {
    return !this.#closed && this.#connections.length > 0 && this.#ready.size === this.#connections.length
  }

  async start(): Promise<void> {
    const nodes = await masters(this.redis)
    for (const node of nodes) {
      const options = isCluster(this.redis) ? node.options : (this.redis as Redis).options
      const connection = new Redis({
        ...options,
        autoResubscribe: false,
        lazyConnect: true,
        enableOfflineQueue: true,
        maxRetriesPerRequest: 1,
      })
      connection.on('error', () => {})
      connection.on('ready', () => void this.#arm(connection))
      connection.on('close', () => {
        if (this.#ready.delete(connection)) this.onInvalidate(null)
      })
      connection.on('message', (_channel: string, message: unknown) => {
        this.onInvalidate(
          Array.isArray(message) ? (message as string[]) : message == null ? null : [String(message)],
        )
      })
      this.#connections.push(connection)
    }
    await Promise.all(this.#connections.map((c) => c.connect().catch(() => {})))
    await Promise.all(this.#connections.map((c) => this.#whenReady(c)))
  }

  async #arm(connection: Redis): Promise<void> {
    try {
      const id = (await connection.client('ID')) as number
      await connection.call('CLIENT', 'TRACKING', 'ON', 'REDIRECT', id, 'BCAST', 'PREFIX', this.prefix)
      await connection.subscribe('__redis__:invalidate')
      // Anything cached before this point may have missed its invalidation.
      this.onInvalidate(null)
      this.#ready.add(connection)
      publishEvent({ package: 'cache', event: 'tracking-armed', prefix: this.prefix })
    } catch (error) {
      publishEvent({ package: 'cache', event: 'tracking-failed', prefix: this.prefix, error })
    }
  }

  #whenReady(connection: Redis): Promise<void> {
    return new Promise((resolve) => {
      const deadline = Date.now() + 5_000
      const check = () => {
        if (this.#ready.has(connection) || this.#closed || Date.now() > deadline) resolve()
        else setTimeout(check, 5)
      }
      check()
    })
  }

  async close(): Promise<void> {
    this.#closed = true
    this.#ready.clear()
    await Promise.all(this.#connections.map((c) => c.quit().catch(() => c.disconnect())))
  }
}
