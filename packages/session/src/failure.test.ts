import { RedisUnavailableError, TimeoutError } from '@rp/core'
import { type RedisServer, startRedis } from '@rp/testing'
import { eventually } from '@rp/testing/vitest'
import { Redis } from 'ioredis'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { SessionStore } from './index.js'

let server: RedisServer
let redis: Redis
const unhandled: unknown[] = []
const onUnhandled = (reason: unknown) => unhandled.push(reason)

beforeAll(async () => {
  server = await startRedis({ ownServer: true })
  redis = new Redis(server.url, { maxRetriesPerRequest: 1, retryStrategy: () => 50 }).on('error', () => {})
  process.on('unhandledRejection', onUnhandled)
})
afterAll(async () => {
  process.off('unhandledRejection', onUnhandled)
  redis.disconnect()
  await server.stop()
})

async function timed<T>(work: Promise<T>): Promise<{ outcome: PromiseSettledResult<T>; ms: number }> {
  const started = performance.now()
  const [outcome] = await Promise.allSettled([work])
  return { outcome: outcome!, ms: performance.now() - started }
}

describe('SessionStore when Redis fails', () => {
  it('answers get and update within timeoutMs while Redis is paused, then works again', async () => {
    const sessions = new SessionStore({ redis, prefix: 'pause', timeoutMs: 200 })
    const anonymous = new SessionStore({ redis, prefix: 'pause', timeoutMs: 200, failure: 'anonymous' })
    const { id } = await sessions.create('u', { n: 0 })
    await server.pause()
    try {
      const get = await timed(sessions.get(id))
      const update = await timed(sessions.update(id, { n: 1 }))
      const anon = await timed(anonymous.get(id))
      for (const { ms } of [get, update, anon]) expect(ms).toBeLessThan(600)
      expect((get.outcome as PromiseRejectedResult).reason).toBeInstanceOf(TimeoutError)
      expect((update.outcome as PromiseRejectedResult).reason).toBeInstanceOf(TimeoutError)
      expect(anon.outcome).toEqual({ status: 'fulfilled', value: null })
    } finally {
      await server.resume()
    }
    // The update that timed out may or may not have run once Redis woke: it is all or nothing.
    await eventually(async () => (await sessions.get(id).catch(() => null)) !== null)
    const after = (await sessions.get(id))!
    expect([0, 1]).toContain(after.data.n)
    expect(after.version).toBe(after.data.n === 1 ? 2 : 1)
    expect(await sessions.update(id, { n: 5 })).toBe(after.version + 1)
    expect(unhandled).toEqual([])
  })

  it('fails fast while Redis is dead, never reports a write that did not happen, and recovers', async () => {
    const sessions = new SessionStore({ redis, prefix: 'kill', timeoutMs: 300 })
    const anonymous = new SessionStore({ redis, prefix: 'kill', timeoutMs: 300, failure: 'anonymous' })
    const { id } = await sessions.create('u', { n: 0 })
    const load = Array.from({ length: 50 }, (_, i) => sessions.update(id, { [`f${i}`]: i }))
    await server.kill()
    const settled = await Promise.allSettled(load)
    const get = await timed(sessions.get(id))
    const update = await timed(sessions.update(id, { x: 1 }))
    const destroy = await timed(sessions.destroy(id))
    const anon = await timed(anonymous.get(id))
    for (const { ms } of [get, update, destroy, anon]) expect(ms).toBeLessThan(700)
    for (const r of [get, update, destroy]) {
      const reason = (r.outcome as PromiseRejectedResult).reason
      expect(reason instanceof RedisUnavailableError || reason instanceof TimeoutError).toBe(true)
    }
    expect(anon.outcome).toEqual({ status: 'fulfilled', value: null })
    await server.restart()
    await eventually(() => redis.status === 'ready')
    // The server kept nothing on disk: the session is gone, not half there.
    expect(await sessions.get(id)).toBeNull()
    expect(settled.every((r) => r.status === 'fulfilled' || r.reason instanceof Error)).toBe(true)
    const fresh = await sessions.create('u', { ok: true })
    expect((await sessions.get(fresh.id))?.data).toEqual({ ok: true })
    expect(unhandled).toEqual([])
  })
})
