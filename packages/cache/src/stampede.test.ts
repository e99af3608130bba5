import { spawn } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import { describeEachTarget, eventually, uniquePrefix } from '@rp/testing/vitest'
import { expect, inject, it } from 'vitest'

const PROCESSES = 4
const CALLERS = 250
const worker = fileURLToPath(new URL('./stampede.worker.ts', import.meta.url))

function runWorker(env: Record<string, string>): Promise<string[]> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--import', 'tsx', '--conditions=@rp/source', worker], {
      env: { ...process.env, ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    })
    let out = ''
    let err = ''
    child.stdout.on('data', (d) => (out += d))
    child.stderr.on('data', (d) => (err += d))
    child.on('exit', (code) =>
      code === 0 ? resolve(JSON.parse(out)) : reject(new Error(`worker exited ${code}: ${err}`)),
    )
  })
}

describeEachTarget('stampede protection across processes', (target) => {
  it(`${PROCESSES} processes × ${CALLERS} concurrent getOrSet on a cold key call the factory once`, async () => {
    const namespace = uniquePrefix('stampede')
    const env: Record<string, string> = { RP_NAMESPACE: namespace, RP_CALLERS: String(CALLERS) }
    if (target.kind === 'cluster') env.RP_CLUSTER_NODES = JSON.stringify(inject('rpClusterNodes'))
    else env.RP_REDIS_URL = inject('rpRedisUrl')
    const redis = target.client()
    const workers = Promise.all(Array.from({ length: PROCESSES }, () => runWorker(env)))
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
