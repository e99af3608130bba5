import { assertClient, masters, type RedisClient } from './client.js'
import { toRpError } from './errors.js'
import { parseInfo } from './info.js'
import { withTimeout } from './timeout.js'
import { knownTimeoutOnly, promised, requireTimeoutMs } from './validate.js'

export interface MemoryReport {
  readonly usedBytes: number
  /** 0 means no limit. On a cluster, the sum of the masters' limits (0 if any master has none). */
  readonly maxmemoryBytes: number
  /** maxmemory-policy; `mixed` when cluster masters disagree. */
  readonly policy: string
  /** The worst (highest) mem_fragmentation_ratio among masters. */
  readonly fragmentationRatio: number
  readonly warnings: readonly string[]
}

export interface NodeMemory {
  usedBytes: number
  rssBytes: number
  maxmemoryBytes: number
  policy: string
  fragmentationRatio: number
  keysWithTtl: number
}

/** Above this ratio with a meaningful heap, memory is being wasted; tiny heaps always look fragmented. */
export const FRAGMENTATION_WARNING_RATIO = 1.5
const FRAGMENTATION_MIN_RSS_BYTES = 64 * 1024 * 1024

/** Pure: the operator-facing warnings for one server's memory figures. */
export function memoryWarnings(node: NodeMemory, label = 'redis'): string[] {
  const warnings: string[] = []
  if (node.maxmemoryBytes === 0) {
    warnings.push(
      `${label}: no maxmemory set; Redis can grow until the OS kills it. Set maxmemory and an eviction policy.`,
    )
  }
  if (node.policy === 'noeviction' && node.keysWithTtl > 0) {
    warnings.push(
      `${label}: maxmemory-policy is noeviction while ${node.keysWithTtl} keys carry TTLs; at the limit writes fail instead of evicting. Consider volatile-lru or allkeys-lru.`,
    )
  }
  if (node.fragmentationRatio > FRAGMENTATION_WARNING_RATIO && node.rssBytes >= FRAGMENTATION_MIN_RSS_BYTES) {
    warnings.push(
      `${label}: memory fragmentation ratio is ${node.fragmentationRatio.toFixed(2)}; consider activedefrag yes.`,
    )
  }
  return warnings
}

function keysWithTtl(keyspaceInfo: Record<string, string>): number {
  let total = 0
  for (const [field, value] of Object.entries(keyspaceInfo)) {
    if (!field.startsWith('db')) continue
    const match = /expires=(\d+)/.exec(value)
    if (match) total += Number(match[1])
  }
  return total
}

async function nodeMemory(node: RedisClient): Promise<NodeMemory> {
  const [memory, keyspaceRaw] = await Promise.all([node.info('memory'), node.info('keyspace')])
  const info = parseInfo(memory)
  return {
    usedBytes: Number(info.used_memory ?? 0),
    rssBytes: Number(info.used_memory_rss ?? 0),
    maxmemoryBytes: Number(info.maxmemory ?? 0),
    policy: info.maxmemory_policy ?? 'unknown',
    fragmentationRatio: Number(info.mem_fragmentation_ratio ?? 0),
    keysWithTtl: keysWithTtl(parseInfo(keyspaceRaw)),
  }
}

/**
 * Memory figures summed over every master, with warnings an operator should act on. Rejects with
 * an @rp error (RedisUnavailableError, TimeoutError) when a master cannot answer within timeoutMs.
 */
export function memory(redis: RedisClient, options: { timeoutMs?: number } = {}): Promise<MemoryReport> {
  return promised(() => {
    assertClient(redis)
    const timeoutMs = requireTimeoutMs('timeoutMs', knownTimeoutOnly(options).timeoutMs ?? 2_000)
    return report(redis, timeoutMs).catch((error: unknown) => {
      throw toRpError(error, 'memory')
    })
  })
}

async function report(redis: RedisClient, timeoutMs: number): Promise<MemoryReport> {
  const work = async () => {
    const nodes = await masters(redis, timeoutMs)
    return { nodes, stats: await Promise.all(nodes.map(nodeMemory)) }
  }
  const { nodes, stats } = await withTimeout(work(), timeoutMs, 'memory')
  const policies = new Set(stats.map((s) => s.policy))
  const labelled = stats.length > 1
  return {
    usedBytes: stats.reduce((sum, s) => sum + s.usedBytes, 0),
    maxmemoryBytes: stats.some((s) => s.maxmemoryBytes === 0)
      ? 0
      : stats.reduce((sum, s) => sum + s.maxmemoryBytes, 0),
    policy: policies.size === 1 ? [...policies][0]! : 'mixed',
    fragmentationRatio: Math.max(...stats.map((s) => s.fragmentationRatio)),
    warnings: stats.flatMap((s, i) =>
      memoryWarnings(s, labelled ? `${nodes[i]!.options.host}:${nodes[i]!.options.port}` : 'redis'),
    ),
  }
}
