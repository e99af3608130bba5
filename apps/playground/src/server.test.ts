import type { AddressInfo } from 'node:net'
import { standaloneClient } from '@rp/testing/vitest'
import { afterAll, expect, it } from 'vitest'
import { createPlayground } from './server.js'

const redis = standaloneClient()
const server = createPlayground({ redis, target: 'test' })
await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()))
const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`
afterAll(async () => {
  server.close()
  await redis.quit()
})

it('serves the health page', async () => {
  const res = await fetch(`${base}/`)
  expect(res.status).toBe(200)
  expect(await res.text()).toContain('<h1>Redis Patterns playground</h1>')
})

it('reports health and memory as JSON', async () => {
  const healthBody = (await (await fetch(`${base}/api/health`)).json()) as { report: unknown }
  expect(healthBody.report).toMatchObject({ ok: true, role: 'master' })
  const memoryBody = (await (await fetch(`${base}/api/memory`)).json()) as { report: { usedBytes: number } }
  expect(memoryBody.report.usedBytes).toBeGreaterThan(0)
  expect((await fetch(`${base}/nope`)).status).toBe(404)
})
