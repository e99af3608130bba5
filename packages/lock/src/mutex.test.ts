import { fileURLToPath } from 'node:url'
import { runWorker } from '@rp/testing'
import { describeEachTarget, uniquePrefix } from '@rp/testing/vitest'
import { expect, inject, it } from 'vitest'

const WORKERS = 8
const ITERATIONS = 200
const worker = fileURLToPath(new URL('./mutex.worker.ts', import.meta.url))

describeEachTarget('mutual exclusion across processes', (target) => {
  it(`${WORKERS} processes × ${ITERATIONS} read-modify-writes: exact count, no overlapping holders`, async () => {
    const prefix = uniquePrefix('mutex')
    const env: Record<string, string> = { RP_PREFIX: prefix, RP_ITERATIONS: String(ITERATIONS) }
    if (target.kind === 'cluster') env.RP_CLUSTER_NODES = JSON.stringify(inject('rpClusterNodes'))
    else env.RP_REDIS_URL = inject('rpRedisUrl')
    const histories = await Promise.all(
      Array.from({ length: WORKERS }, () => runWorker<Array<[number, string, string]>>(worker, env)),
    )

    const redis = target.client()
    expect(Number(await redis.get(`${prefix}:{mutex}:counter`))).toBe(WORKERS * ITERATIONS)

    const holds = histories
      .flat()
      .map(([token, start, end]) => ({ token, start: BigInt(start), end: BigInt(end) }))
    holds.sort((a, b) => (a.start < b.start ? -1 : 1))
    expect(holds).toHaveLength(WORKERS * ITERATIONS)
    for (let i = 1; i < holds.length; i++) {
      // Each hold ends before the next begins, and tokens rise in the order the lock was held.
      expect(holds[i]!.start > holds[i - 1]!.end).toBe(true)
      expect(holds[i]!.token).toBeGreaterThan(holds[i - 1]!.token)
    }
  }, 120_000)
})
