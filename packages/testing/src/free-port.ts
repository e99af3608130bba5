import { createServer } from 'node:net'

function listenOnce(port: number): Promise<number | null> {
  return new Promise((resolve) => {
    const server = createServer()
    server.once('error', () => resolve(null))
    server.listen(port, '127.0.0.1', () => {
      const address = server.address()
      const bound = typeof address === 'object' && address ? address.port : null
      server.close(() => resolve(bound))
    })
  })
}

/**
 * A free TCP port on 127.0.0.1. With `withBusPort`, port + 10000 is free too, because a cluster node
 * listens on both and a collision there fails only once the cluster starts gossiping.
 */
export async function freePort(options: { withBusPort?: boolean } = {}): Promise<number> {
  for (let attempt = 0; attempt < 50; attempt++) {
    const port = await listenOnce(0)
    if (port === null) continue
    if (!options.withBusPort) return port
    if (port + 10_000 > 65_535) continue
    if ((await listenOnce(port + 10_000)) !== null) return port
  }
  throw new Error('could not find a free port on 127.0.0.1')
}
