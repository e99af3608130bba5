import type { AddressInfo } from 'node:net'
import { standaloneClient } from '@rp/testing/vitest'
import { afterAll, expect, it } from 'vitest'
import { createDemos } from './demos.js'
import { createPlayground } from './server.js'

const redis = standaloneClient()
const demos = createDemos(redis)
const server = createPlayground({ redis, target: 'test', demos })
await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()))
const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`
afterAll(async () => {
  server.close()
  await demos.close()
  await redis.quit()
})

it('serves the health page', async () => {
  const res = await fetch(`${base}/`)
  expect(res.status).toBe(200)
  const html = await res.text()
  expect(html).toContain('<h1>Redis Patterns playground</h1>')
  // The page's script must at least parse: a broken escape once left every panel empty.
  const script = /<script>([\s\S]*)<\/script>/.exec(html)![1]!
  expect(() => new Function(script)).not.toThrow()
})

it('reports health and memory as JSON', async () => {
  const healthBody = (await (await fetch(`${base}/api/health`)).json()) as { report: unknown }
  expect(healthBody.report).toMatchObject({ ok: true, role: 'master' })
  const memoryBody = (await (await fetch(`${base}/api/memory`)).json()) as { report: { usedBytes: number } }
  expect(memoryBody.report.usedBytes).toBeGreaterThan(0)
  expect((await fetch(`${base}/nope`)).status).toBe(404)
})

it('demonstrates each pattern over HTTP', async () => {
  const statuses = []
  for (let i = 0; i < 7; i++) statuses.push((await fetch(`${base}/api/ratelimit`, { method: 'POST' })).status)
  expect(statuses.filter((s) => s === 200).length).toBeLessThanOrEqual(5)
  expect(statuses).toContain(429)

  const [a, b] = (await Promise.all([
    fetch(`${base}/api/lock`, { method: 'POST' }).then((r) => r.json()),
    fetch(`${base}/api/lock`, { method: 'POST' }).then((r) => r.json()),
  ])) as Array<{ token: number; waitedMs: number }>
  expect(a!.token).not.toBe(b!.token)
  expect(Math.max(a!.waitedMs, b!.waitedMs)).toBeGreaterThanOrEqual(900)

  const first = (await (await fetch(`${base}/api/cache`)).json()) as { factoryCalls: number }
  const second = (await (await fetch(`${base}/api/cache`)).json()) as { factoryCalls: number; ms: number }
  expect(second.factoryCalls).toBe(first.factoryCalls)
  expect(second.ms).toBeLessThan(100)
}, 20_000)
