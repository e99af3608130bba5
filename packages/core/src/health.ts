import { assertClient, isCluster, masters, type RedisClient } from './client.js'
import { parseInfo } from './info.js'
import { withTimeout } from './timeout.js'
import { knownTimeoutOnly, promised, requireTimeoutMs } from './validate.js'

export interface HealthReport {
  /** Every node answered within the timeout (and, on a cluster, cluster_state is ok). */
  readonly ok: boolean
  /** Round-trip time of PING; the slowest master on a cluster. */
  readonly latencyMs: number
  readonly role: 'master' | 'replica' | 'cluster' | 'unknown'
  /** redis_version of the (first) server, or null when unreachable. */
  readonly version: string | null
  /** Why `ok` is false. */
  readonly error?: string
}

async function probe(node: RedisClient) {
  const started = performance.now()
  await node.ping()
  const latencyMs = performance.now() - started
  const info = parseInfo(await node.info('server'))
  const replication = parseInfo(await node.info('replication'))
  return { latencyMs, info, replication }
}

/** Pings every master and reports, never throwing and never waiting longer than `timeoutMs`. */
export function health(redis: RedisClient, options: { timeoutMs?: number } = {}): Promise<HealthReport> {
  return promised(() => {
    assertClient(redis)
    return probeAll(redis, requireTimeoutMs('timeoutMs', knownTimeoutOnly(options).timeoutMs ?? 1_000))
  })
}

async function probeAll(redis: RedisClient, timeoutMs: number): Promise<HealthReport> {
  try {
    if (isCluster(redis)) {
      const work = async () => {
        const nodes = await masters(redis, timeoutMs)
        if (nodes.length === 0) throw new Error('no master is connected')
        const probes = await Promise.all(nodes.map(probe))
        const state = parseInfo((await redis.cluster('INFO')) as string).cluster_state
        return { probes, state }
      }
      const { probes, state } = await withTimeout(work(), timeoutMs, 'health')
      const latencyMs = Math.max(...probes.map((p) => p.latencyMs))
      const version = probes[0]?.info.redis_version ?? null
      const ok = state === 'ok'
      return { ok, latencyMs, role: 'cluster', version, ...(ok ? {} : { error: `cluster_state:${state}` }) }
    }
    const p = await withTimeout(probe(redis), timeoutMs, 'health')
    const role =
      p.replication.role === 'slave' ? 'replica' : p.replication.role === 'master' ? 'master' : 'unknown'
    return { ok: true, latencyMs: p.latencyMs, role, version: p.info.redis_version ?? null }
  } catch (error) {
    return {
      ok: false,
      latencyMs: Number.NaN,
      role: 'unknown',
      version: null,
      error: (error as Error).message,
    }
  }
}
