import { fileURLToPath } from 'node:url'
import { runWorker } from '@rp/testing'
import { describeEachTarget, eventually, uniquePrefix } from '@rp/testing/vitest'
import { expect, inject, it } from 'vitest'

const PROCESSES = 4
const CALLERS = 250
const worker = fileURLToPath(new URL('./stampede.worker.ts', import.meta.url))

describeEachTarget('stampede protection across processes', (target) => {
  it(`${PROCESSES} processes × ${CALLERS} concurrent getOrSet on a cold key call the factory once`, async () => {
    const namespace = uniquePrefix('stampede')
    const env: Record<string, string> = { RP_NAMESPACE: namespace, RP_CALLERS: String(CALLERS) }
    if (target.kind === 'cluster') env.RP_CLUSTER_NODES = JSON.stringify(inject('rpClusterNodes'))
    else env.RP_REDIS_URL = inject('rpRedisUrl')
    const redis = target.client()
    const workers = Promise.all(Array.from({ length: PROCESSES }, () => runWorker<string[]>(worker, env)))
    // Release every process at once, so they all meet the cold key together.
    await eventually(
      async () => Number(await redis.get(`${namespace}:{stampede}:ready`)) === PROCESSES,
      30_000,
      'workers ready',
    )
    await redis.set(`${namespace}:{stampede}:go`, '1', 'PX', 60_000)
    const values = (await workers).flat()
    expect(values).toHaveLength(PROCESSES * CALLERS)
    expect(new Set(values)).toEqual(new Set(['computed once']))
    expect(Number(await redis.get(`${namespace}:{stampede}:factory-calls`))).toBe(1)
  }, 60_000)
})
