import calculateSlot from 'cluster-key-slot'
import { assertUsableClient, isCluster, masters, type RedisClient } from './client.js'
import { AbortError, toRpError } from './errors.js'
import { withTimeout } from './timeout.js'
import {
  promised,
  requireFunction,
  requireKnownOptions,
  requireNonEmptyString,
  requireOptions,
  requirePositiveInteger,
  requireSignal,
  requireTimeoutMs,
} from './validate.js'

export interface ScanOptions {
  /** SCAN MATCH pattern. Build it with a keyspace (`pattern()`) so it matches only your own keys. */
  match: string
  /** SCAN COUNT hint per call; default 500. */
  count?: number
  /** Optional SCAN TYPE filter, e.g. `hash`. */
  type?: string
  /** Bound on each Redis call (every SCAN, every UNLINK batch); default 2000. */
  timeoutMs?: number
  signal?: AbortSignal
}

interface ResolvedScan {
  match: string
  count: number
  type: string | undefined
  timeoutMs: number
  signal: AbortSignal | undefined
}

const SCAN_OPTIONS = ['match', 'count', 'type', 'timeoutMs', 'signal']

function resolveScan(options: ScanOptions, known = SCAN_OPTIONS): ResolvedScan {
  const o = requireOptions('options', options)
  requireKnownOptions('options', o, known)
  return {
    match: requireNonEmptyString('match', o.match),
    count: requirePositiveInteger('count', o.count ?? 500),
    type: o.type === undefined ? undefined : requireNonEmptyString('type', o.type),
    timeoutMs: requireTimeoutMs('timeoutMs', o.timeoutMs ?? 2_000),
    signal: requireSignal('signal', o.signal),
  }
}

async function* scan(redis: RedisClient, o: ResolvedScan): AsyncGenerator<string[], void, undefined> {
  for (const node of await masters(redis, o.timeoutMs)) {
    let cursor = '0'
    do {
      if (o.signal?.aborted) throw new AbortError('scan', { cause: o.signal.reason })
      const args: Array<string | number> = [cursor, 'MATCH', o.match, 'COUNT', o.count]
      if (o.type) args.push('TYPE', o.type)
      const [next, keys] = (await withTimeout(node.call('SCAN', ...args), o.timeoutMs, 'scan').catch(
        (error: unknown) => {
          throw toRpError(error, 'scan')
        },
      )) as [string, string[]]
      cursor = next
      if (keys.length > 0) yield keys
    } while (cursor !== '0')
  }
}

/**
 * Every key matching `match`, visiting each master of a cluster in turn (SCAN is per node). A key
 * may be yielded twice if it is rehashed during the scan, as SCAN itself allows; callers that
 * delete are idempotent anyway. Options are checked before the first SCAN; every call is bounded by
 * `timeoutMs` and fails with an @rp error.
 */
export function scanKeys(
  redis: RedisClient,
  options: ScanOptions,
): AsyncGenerator<string[], void, undefined> {
  let resolved: ResolvedScan
  try {
    // SCAN cursors and keys are strings either way: only a keyPrefix would make it wrong.
    assertUsableClient(redis, { integers: false })
    resolved = resolveScan(options)
  } catch (error) {
    // An async generator reports bad arguments on its first next(), like every promise API here.
    return (async function* () {
      yield* []
      throw error
    })()
  }
  return scan(redis, resolved)
}

export interface DeleteByPatternOptions extends ScanOptions {
  /** Keys per UNLINK; default 500. */
  batchSize?: number
  /** Called with each batch of matched keys; return only those to delete (e.g. an exact ownership check). */
  filter?: (keys: string[]) => string[]
}

/**
 * Deletes every key matching `match` with batched UNLINK (non-blocking on the server). On a
 * cluster the keys are grouped by slot, because one UNLINK may only name keys of one slot.
 * Returns how many keys were actually removed.
 */
export function deleteByPattern(redis: RedisClient, options: DeleteByPatternOptions): Promise<number> {
  return promised(async () => {
    assertUsableClient(redis, { integers: false })
    const o = resolveScan(options, [...SCAN_OPTIONS, 'batchSize', 'filter'])
    const batchSize = requirePositiveInteger('batchSize', options.batchSize ?? 500)
    if (options.filter !== undefined) requireFunction('filter', options.filter)
    const cluster = isCluster(redis)
    let deleted = 0
    for await (const found of scan(redis, o)) {
      const keys = options.filter ? options.filter(found) : found
      const groups = new Map<number, string[]>()
      for (const key of keys) {
        const slot = cluster ? calculateSlot(key) : 0
        const group = groups.get(slot)
        if (group) group.push(key)
        else groups.set(slot, [key])
      }
      const batches: string[][] = []
      for (const group of groups.values()) {
        for (let i = 0; i < group.length; i += batchSize) batches.push(group.slice(i, i + batchSize))
      }
      const counts = await Promise.all(
        batches.map((batch) =>
          withTimeout(redis.unlink(...batch), o.timeoutMs, 'unlink').catch((error: unknown) => {
            throw toRpError(error, 'unlink')
          }),
        ),
      )
      // Number(): a client with stringNumbers answers UNLINK's count as a string.
      deleted += counts.reduce((a: number, b) => a + Number(b), 0)
    }
    return deleted
  })
}
