import { createConnection, createServer, type Server, type Socket } from 'node:net'

export interface TcpProxy {
  readonly port: number
  readonly url: string
  /** Stops forwarding in both directions, like a network path that silently drops: sockets stay open. */
  stall(): void
  /** Forwards again, including what was held back. */
  resume(): void
  close(): Promise<void>
}

/**
 * A loopback TCP proxy in front of a redis-server, so a test can stall one client's connection
 * while every other client keeps talking to the same server.
 */
export async function startTcpProxy(targetPort: number, targetHost = '127.0.0.1'): Promise<TcpProxy> {
  const sockets = new Set<Socket>()
  let stalled = false
  const server: Server = createServer((client) => {
    const upstream = createConnection({ port: targetPort, host: targetHost })
    for (const s of [client, upstream]) {
      sockets.add(s)
      s.on('error', () => s.destroy())
      s.on('close', () => sockets.delete(s))
      if (stalled) s.pause()
    }
    client.pipe(upstream)
    upstream.pipe(client)
    client.on('close', () => upstream.destroy())
    upstream.on('close', () => client.destroy())
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const port = (server.address() as { port: number }).port
  return {
    port,
    url: `redis://127.0.0.1:${port}`,
    stall() {
      stalled = true
      for (const s of sockets) s.pause()
    },
    resume() {
      stalled = false
      for (const s of sockets) s.resume()
    },
    async close() {
      for (const s of sockets) s.destroy()
      await new Promise<void>((resolve) => server.close(() => resolve()))
    },
  }
}
