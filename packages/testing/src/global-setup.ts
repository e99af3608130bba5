import type { TestProject } from 'vitest/node'
import type { RedisServer } from './redis-server.js'
import { type RedisClusterHandle, startCluster } from './start-cluster.js'
import { startRedis } from './start-redis.js'

interface Shared {
  standalone: RedisServer
  cluster: RedisClusterHandle
  users: number
}

const KEY = Symbol.for('@rp/testing/shared-servers')
type Holder = { [KEY]?: Promise<Shared> }

/**
 * Vitest global setup: one standalone server and one 3×1 cluster, shared by every test file of
 * every project in the run. Each project calls this, so the servers are started once and
 * reference-counted.
 */
export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  const holder = globalThis as Holder
  holder[KEY] ??= (async () => {
    const [standalone, cluster] = await Promise.all([startRedis(), startCluster({ masters: 3, replicas: 1 })])
    return { standalone, cluster, users: 0 }
  })()
  const shared = await holder[KEY]
  shared.users++
  project.provide('rpRedisUrl', shared.standalone.url)
  project.provide('rpClusterNodes', [...shared.cluster.nodes])
  return async () => {
    shared.users--
    if (shared.users > 0) return
    delete holder[KEY]
    await Promise.all([shared.standalone.stop(), shared.cluster.stop()])
  }
}

declare module 'vitest' {
  export interface ProvidedContext {
    rpRedisUrl: string
    rpClusterNodes: Array<{ host: string; port: number }>
  }
}
