import { guarded, isCluster, masters, nodeConnection, type RedisClient, shutdown } from '@rp/core/kit'
import type { Redis, RedisOptions } from 'ioredis'
import { emit } from './events.js'

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
  #syncing: Promise<void> = Promise.resolve()
  readonly #onRefresh = guarded('cache', 'tracking.refresh', () => {
    // Serialized: refresh events can arrive while a previous sync is still connecting. A sync that
    // fails (the cluster is mid-failover) is tried again shortly, not only at the next refresh.
    this.#syncing = this.#syncing
      .then(() => this.#sync())
      .catch((error: unknown) => {
        emit({ package: 'cache', event: 'tracking-failed', prefix: this.prefix, error })
        if (!this.#closed) setTimeout(this.#onRefresh, 500).unref()
      })
  })

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
    await this.#sync()
    // After a failover or resharding the set of masters changes: follow it, so a dead master's
    // tracker does not keep L1 disabled forever and a promoted replica gets one.
    if (isCluster(this.redis)) this.redis.on('refresh', this.#onRefresh)
    await Promise.all(this.#connections.map((c) => this.#whenReady(c)))
  }

  async #sync(): Promise<void> {
    if (this.#closed) return
    // Generous: this runs in the background, while a failover settles.
    const nodes = await masters(this.redis, 10_000)
    const wanted = new Map(nodes.map((n) => [`${n.options.host}:${n.options.port}`, n]))
    for (const connection of [...this.#connections]) {
      const key = `${connection.options.host}:${connection.options.port}`
      if (wanted.has(key)) wanted.delete(key)
      else {
        this.#connections.splice(this.#connections.indexOf(connection), 1)
        this.#ready.delete(connection)
        connection.disconnect()
      }
    }
    for (const node of wanted.values()) {
      // RESP2 on purpose: with REDIRECT, a RESP2 connection receives invalidations as ordinary pub/sub
      // messages, while under RESP3 (ioredis 6's default) they arrive as 'invalidate' pushes that
      // ioredis drops. ioredis 5 ignores the option.
      const connection = nodeConnection(this.redis, node, {
        protocol: 2,
        autoResubscribe: false,
        lazyConnect: true,
        enableOfflineQueue: true,
        maxRetriesPerRequest: 1,
      } as RedisOptions)
      // Every listener is guarded: a key another client wrote (malformed, foreign) or any other
      // surprise must become an event, never an exception thrown out of an ioredis emitter.
      connection.on('error', () => {})
      connection.on(
        'ready',
        guarded('cache', 'tracking.ready', () => this.#arm(connection)),
      )
      connection.on(
        'close',
        guarded('cache', 'tracking.close', () => {
          if (this.#ready.delete(connection)) this.onInvalidate(null)
        }),
      )
      // 'messageBuffer' keeps the payload's shape: ioredis's 'message' would join an array of keys with commas.
      connection.on(
        'messageBuffer',
        guarded('cache', 'tracking.invalidate', (_channel: Buffer, message: Buffer | Buffer[] | null) => {
          if (message === null || (Buffer.isBuffer(message) && message.length === 0)) this.onInvalidate(null)
          else this.onInvalidate((Array.isArray(message) ? message : [message]).map((k) => k.toString()))
        }),
      )
      this.#connections.push(connection)
      await connection.connect().catch(() => {})
    }
  }

  async #arm(connection: Redis): Promise<void> {
    try {
      const id = (await connection.client('ID')) as number
      await connection.call('CLIENT', 'TRACKING', 'ON', 'REDIRECT', id, 'BCAST', 'PREFIX', this.prefix)
      await connection.subscribe('__redis__:invalidate')
      // Anything cached before this point may have missed its invalidation.
      this.onInvalidate(null)
      this.#ready.add(connection)
      emit({ package: 'cache', event: 'tracking-armed', prefix: this.prefix })
    } catch (error) {
      emit({ package: 'cache', event: 'tracking-failed', prefix: this.prefix, error })
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

  /** Bounded: a paused or unreachable server cannot hold it up past about a second. */
  async close(): Promise<void> {
    this.#closed = true
    this.#ready.clear()
    this.redis.off('refresh', this.#onRefresh)
    await Promise.race([this.#syncing, new Promise((r) => setTimeout(r, 1_000).unref())])
    await shutdown(this.#connections, { timeoutMs: 1_000 })
  }
}
