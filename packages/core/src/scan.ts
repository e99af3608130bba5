import calculateSlot from 'cluster-key-slot'
import { assertUsableClient, isCluster, masters, type RedisClient } from './client.js'
import { requirePositiveInteger } from './validate.js'

export interface ScanOptions {
  /** SCAN MATCH pattern. Build it with a keyspace so user input is escaped. */
  match: string
  /** SCAN COUNT hint per call; default 500. */
  count?: number
  /** Optional SCAN TYPE filter, e.g. `hash`. */
  type?: string
  signal?: AbortSignal
}

/**
 * Every key matching `match`, visiting each master of a cluster in turn (SCAN is per node). A key
 * may be yielded twice if it is rehashed during the scan, as SCAN itself allows; callers that
 * delete are idempotent anyway.
 */
export async function* scanKeys(
  redis: RedisClient,
  options: ScanOptions,
): AsyncGenerator<string[], void, undefined> {
  assertUsableClient(redis)
  const count = requirePositiveInteger('count', options.count ?? 500)
  for (const node of await masters(redis)) {
    let cursor = '0'
    do {
      options.signal?.throwIfAborted()
      const args: Array<string | number> = [cursor, 'MATCH', options.match, 'COUNT', count]
      if (options.type) args.push('TYPE', options.type)
      const [next, keys] = (await node.call('SCAN', ...args)) as [string, string[]]
      cursor = next
      if (keys.length > 0) yield keys
    } while (cursor !== '0')
  }
}

export interface DeleteByPatternOptions extends ScanOptions {
  /** Keys per UNLINK; default 500. */
  batchSize?: number
}

/**
 * Deletes every key matching `match` with batched UNLINK (non-blocking on the server). On a
 * cluster the keys are grouped by slot, because one UNLINK may only name keys of one slot.
 * Returns how many keys were actually removed.
 */
export async function deleteByPattern(redis: RedisClient, options: DeleteByPatternOptions): Promise<number> {
  const batchSize = requirePositiveInteger('batchSize', options.batchSize ?? 500)
  const cluster = isCluster(redis)
  let deleted = 0
  for await (const keys of scanKeys(redis, options)) {
    const groups = new Map<number, string[]>()
    if (cluster) {
      for (const key of keys) {
        const slot = calculateSlot(key)
        const group = groups.get(slot)
        if (group) group.push(key)
        else groups.set(slot, [key])
      }
    } else {
      groups.set(0, keys)
    }
    const batches: string[][] = []
    for (const group of groups.values()) {
      for (let i = 0; i < group.length; i += batchSize) batches.push(group.slice(i, i + batchSize))
    }
    const counts = await Promise.all(batches.map((batch) => redis.unlink(...batch)))
    deleted += counts.reduce((a, b) => a + b, 0)
  }
  return deleted
}
