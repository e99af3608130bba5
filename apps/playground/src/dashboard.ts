import { health, masters, memory, parseInfo, type RedisClient, scanKeys } from '@rp/core'
import { PACKAGE_PREFIXES } from './services.js'

/** Keys scanned per refresh at most: the panel is a sample, never a load on Redis. */
const KEY_SCAN_LIMIT = 5_000
const KEYS_REFRESH_MS = 3_000
const SNAPSHOT_MS = 1_000

interface CommandSample {
  at: number
  calls: Map<string, number>
}

/** Sums `cmdstat_*` calls over every master: the cluster's total, or the one server's. */
async function commandCalls(redis: RedisClient): Promise<Map<string, number>> {
  const totals = new Map<string, number>()
  for (const node of await masters(redis)) {
    const info = parseInfo(await node.info('commandstats'))
    for (const [field, value] of Object.entries(info)) {
      if (!field.startsWith('cmdstat_')) continue
      const calls = Number(/calls=(\d+)/.exec(value)?.[1] ?? 0)
      const name = field.slice('cmdstat_'.length)
      totals.set(name, (totals.get(name) ?? 0) + calls)
    }
  }
  return totals
}

/** Counts the arcade's keys per package, with and without a TTL, from a bounded SCAN of every master. */
async function keysPerPackage(redis: RedisClient) {
  const counts = Object.fromEntries(
    Object.keys(PACKAGE_PREFIXES).map((name) => [name, { withTtl: 0, withoutTtl: 0 }]),
  ) as Record<keyof typeof PACKAGE_PREFIXES, { withTtl: number; withoutTtl: number }>
  let scanned = 0
  const prefixes = Object.entries(PACKAGE_PREFIXES) as Array<[keyof typeof PACKAGE_PREFIXES, string]>
  for (const [name, prefix] of prefixes) {
    for await (const batch of scanKeys(redis, { match: `${prefix}:*`, count: 500 })) {
      const ttls = await Promise.all(batch.map((key) => redis.pttl(key)))
      for (const ttl of ttls) {
        if (ttl === -2) continue
        if (ttl === -1) counts[name].withoutTtl++
        else counts[name].withTtl++
      }
      scanned += batch.length
      if (scanned >= KEY_SCAN_LIMIT) return { counts, truncated: true }
    }
  }
  return { counts, truncated: false }
}

/** The core panel: health, memory with warnings, commands per second, keys per package. */
export function createDashboard(redis: RedisClient) {
  let previous: CommandSample | null = null
  let keys: { at: number; value: Awaited<ReturnType<typeof keysPerPackage>> } | null = null

  let shared: { at: number; value: Promise<Snapshot> } | null = null

  /** One snapshot per second at most, shared by every page that asks meanwhile. */
  function snapshot(): Promise<Snapshot> {
    if (!shared || Date.now() - shared.at > SNAPSHOT_MS) {
      const value = take()
      shared = { at: Date.now(), value }
      value.catch(() => {
        if (shared?.value === value) shared = null
      })
    }
    return shared.value
  }

  return { snapshot }

  async function take() {
    const [report, mem] = await Promise.all([
      health(redis, { timeoutMs: 1_000 }),
      memory(redis, { timeoutMs: 1_000 }).catch((error: Error) => ({ error: error.message })),
    ])
    let commandsPerSecond: number | null = null
    let topCommands: Array<{ command: string; perSecond: number }> = []
    if (report.ok) {
      const sample = { at: Date.now(), calls: await commandCalls(redis) }
      if (previous && sample.at > previous.at) {
        const seconds = (sample.at - previous.at) / 1_000
        const rates = [...sample.calls].map(([command, calls]) => ({
          command,
          perSecond: Math.max(0, calls - (previous?.calls.get(command) ?? 0)) / seconds,
        }))
        commandsPerSecond = rates.reduce((sum, r) => sum + r.perSecond, 0)
        topCommands = rates.sort((a, b) => b.perSecond - a.perSecond).slice(0, 6)
      }
      previous = sample
      if (!keys || Date.now() - keys.at > KEYS_REFRESH_MS)
        keys = { at: Date.now(), value: await keysPerPackage(redis) }
    }
    return { health: report, memory: mem, commandsPerSecond, topCommands, keys: keys?.value ?? null }
  }
}

type Snapshot = {
  health: Awaited<ReturnType<typeof health>>
  memory: Awaited<ReturnType<typeof memory>> | { error: string }
  commandsPerSecond: number | null
  topCommands: Array<{ command: string; perSecond: number }>
  keys: Awaited<ReturnType<typeof keysPerPackage>> | null
}
