import { Redis } from 'ioredis'
import { type RedisServer, startBinaryServer } from './redis-server.js'

export interface RedisClusterHandle {
  /** Seed nodes for `new Cluster(nodes)`. */
  readonly nodes: ReadonlyArray<{ host: string; port: number }>
  readonly servers: readonly RedisServer[]
  /** Kill the master that serves `slot` (default 0) and return its address. */
  killMaster(slot?: number): Promise<{ host: string; port: number }>
  /** Resolves once every live master's replicas have acknowledged all writes so far (WAIT). */
  waitForReplication(timeoutMs?: number): Promise<void>
  /**
   * Moves `slot` and its keys to another live master (the next one after its owner), the way
   * `redis-cli --cluster reshard` does: IMPORTING, MIGRATING, MIGRATE, then SETSLOT NODE everywhere.
   * Returns the new owner's address.
   */
  migrateSlot(slot: number): Promise<{ host: string; port: number }>
  /** Resolves once every slot is served again, i.e. a replica took over. */
  waitForFailover(timeoutMs?: number): Promise<void>
  stop(): Promise<void>
}

const SLOTS = 16_384

async function until(what: string, timeoutMs: number, check: () => Promise<boolean>): Promise<void> {
  const deadline = Date.now() + timeoutMs
  while (Date.now() < deadline) {
    if (await check().catch(() => false)) return
    await new Promise((r) => setTimeout(r, 100))
  }
  throw new Error(`cluster: timed out waiting for ${what}`)
}

function clusterInfo(raw: string): Record<string, string> {
  return Object.fromEntries(
    raw
      .split('\r\n')
      .filter(Boolean)
      .map((line) => line.split(':') as [string, string]),
  )
}

/**
 * A real Redis Cluster from redis-server binaries: slots split evenly over the masters, each
 * master with its replicas, ready once every node reports cluster_state:ok.
 */
export async function startCluster(
  options: { masters?: number; replicas?: number } = {},
): Promise<RedisClusterHandle> {
  const masters = options.masters ?? 3
  const replicas = options.replicas ?? 1
  const total = masters * (1 + replicas)
  const servers = await Promise.all(Array.from({ length: total }, () => startBinaryServer({ cluster: true })))
  const admin = servers.map((s) =>
    new Redis({ host: s.host, port: s.port, maxRetriesPerRequest: 1 }).on('error', () => {}),
  )
  const liveAdmins = () => admin.filter((_, i) => !killed.has(i))
  const killed = new Set<number>()
  try {
    const ids = await Promise.all(admin.map((c) => c.call('CLUSTER', 'MYID') as Promise<string>))
    const per = Math.floor(SLOTS / masters)
    for (let m = 0; m < masters; m++) {
      const start = m * per
      const end = m === masters - 1 ? SLOTS - 1 : start + per - 1
      await admin[m]!.call('CLUSTER', 'ADDSLOTSRANGE', start, end)
      // Distinct epochs, as redis-cli sets them, so masters never tie when resolving config conflicts.
      await admin[m]!.call('CLUSTER', 'SET-CONFIG-EPOCH', m + 1)
    }
    for (const server of servers.slice(1)) await admin[0]!.call('CLUSTER', 'MEET', server.host, server.port)
    await until('all nodes to meet', 20_000, async () => {
      const views = await Promise.all(admin.map((c) => c.call('CLUSTER', 'NODES') as Promise<string>))
      return views.every((v) => v.trim().split('\n').length === total && !v.includes('handshake'))
    })
    for (let r = 0; r < masters * replicas; r++) {
      await admin[masters + r]!.call('CLUSTER', 'REPLICATE', ids[r % masters]!)
    }
    await until('cluster_state:ok and replicas in sync', 30_000, async () => {
      const infos = await Promise.all(admin.map((c) => c.call('CLUSTER', 'INFO') as Promise<string>))
      if (!infos.every((i) => clusterInfo(i).cluster_state === 'ok')) return false
      const repl = await Promise.all(admin.slice(masters).map((c) => c.info('replication')))
      return repl.every((r) => r.includes('master_link_status:up'))
    })
  } catch (error) {
    for (const c of admin) c.disconnect()
    await Promise.all(servers.map((s) => s.stop()))
    throw error
  }

  const handle: RedisClusterHandle = {
    nodes: servers.slice(0, masters).map((s) => ({ host: s.host, port: s.port })),
    servers,
    async killMaster(slot = 0) {
      const alive = liveAdmins()[0]!
      const slotsReply = (await alive.call('CLUSTER', 'SLOTS')) as Array<[number, number, [string, number]]>
      const owner = slotsReply.find(([from, to]) => slot >= from && slot <= to)
      if (!owner) throw new Error(`no node serves slot ${slot}`)
      const [, , [host, port]] = owner
      const index = servers.findIndex((s) => s.port === port)
      killed.add(index)
      admin[index]!.disconnect()
      await servers[index]!.kill()
      return { host, port }
    },
    async migrateSlot(slot) {
      const live = admin.slice(0, masters).filter((_, i) => !killed.has(i))
      const slotsReply = (await live[0]!.call('CLUSTER', 'SLOTS')) as Array<
        [number, number, [string, number]]
      >
      const owner = slotsReply.find(([from, to]) => slot >= from && slot <= to)
      if (!owner) throw new Error(`no node serves slot ${slot}`)
      const source = live.find((c) => c.options.port === owner[2][1])!
      const target = live[(live.indexOf(source) + 1) % live.length]!
      if (target === source) throw new Error('migrateSlot needs two live masters')
      const [sourceId, targetId] = (await Promise.all([
        source.call('CLUSTER', 'MYID'),
        target.call('CLUSTER', 'MYID'),
      ])) as [string, string]
      await target.call('CLUSTER', 'SETSLOT', slot, 'IMPORTING', sourceId)
      await source.call('CLUSTER', 'SETSLOT', slot, 'MIGRATING', targetId)
      for (;;) {
        const keys = (await source.call('CLUSTER', 'GETKEYSINSLOT', slot, 100)) as string[]
        if (keys.length === 0) break
        // One MIGRATE per key: a migrated slot in a test holds a handful of keys.
        for (const key of keys)
          await source.call('MIGRATE', target.options.host!, target.options.port!, key, 0, 5_000)
      }
      // The target first, so the slot is never without an owner that accepts it.
      await target.call('CLUSTER', 'SETSLOT', slot, 'NODE', targetId)
      await source.call('CLUSTER', 'SETSLOT', slot, 'NODE', targetId)
      for (const c of live)
        if (c !== source && c !== target) await c.call('CLUSTER', 'SETSLOT', slot, 'NODE', targetId)
      await until('every node to agree on the slot', 10_000, async () => {
        const views = await Promise.all(
          liveAdmins().map((c) => c.call('CLUSTER', 'SLOTS') as Promise<typeof slotsReply>),
        )
        return views.every((v) =>
          v.some(([from, to, [, port]]) => slot >= from && slot <= to && port === target.options.port),
        )
      })
      return { host: target.options.host!, port: target.options.port! }
    },
    async waitForReplication(timeoutMs = 5_000) {
      // WAIT only covers the writes of the connection that sends it (here: none), so compare
      // offsets instead: every replica must have caught up with its master's replication offset.
      await until('replication', timeoutMs, async () => {
        const infos = await Promise.all(
          admin
            .slice(0, masters)
            .filter((_, i) => !killed.has(i))
            .map((c) => c.info('replication')),
        )
        return infos.every((info) => {
          const offset = Number(/master_repl_offset:(\d+)/.exec(info)?.[1] ?? Number.NaN)
          const slaves = [...info.matchAll(/slave\d+:[^\r\n]*offset=(\d+)/g)].map((m) => Number(m[1]))
          return slaves.length >= replicas && slaves.every((o) => o >= offset)
        })
      })
    },
    async waitForFailover(timeoutMs = 30_000) {
      await until('failover', timeoutMs, async () => {
        const infos = await Promise.all(liveAdmins().map((c) => c.call('CLUSTER', 'INFO') as Promise<string>))
        return infos.every((i) => {
          const info = clusterInfo(i)
          return info.cluster_state === 'ok' && info.cluster_slots_ok === String(SLOTS)
        })
      })
    },
    async stop() {
      for (const c of admin) c.disconnect()
      await Promise.all(servers.map((s) => s.stop()))
    },
  }
  return handle
}
