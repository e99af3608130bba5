import { setFlagsFromString } from 'node:v8'
import { runInNewContext } from 'node:vm'
import { standaloneClient, uniquePrefix } from '@rp/testing/vitest'
import { afterAll, expect, it } from 'vitest'
import { PubSub } from './pubsub.js'

setFlagsFromString('--expose-gc')
const gc = runInNewContext('gc') as () => void

function heapAfterGc(): number {
  gc()
  gc()
  return process.memoryUsage().heapUsed
}

const publisherClient = standaloneClient()
const subscriberClient = standaloneClient()
afterAll(() => {
  publisherClient.disconnect()
  subscriberClient.disconnect()
})

it('a consumer that reads nothing while 100,000 messages arrive holds only bufferSize of them', async () => {
  const prefix = uniquePrefix('mem')
  type Events = { feed: { id: number; body: string } }
  const publisher = new PubSub<Events>({ redis: publisherClient, prefix })
  const subscriber = new PubSub<Events>({ redis: subscriberClient, prefix })
  let dropped = 0
  let overflowEvents = 0
  subscriber.on('overflow', (e) => {
    dropped += e.dropped
    overflowEvents++
  })
  const feed = subscriber.iterate('feed', { bufferSize: 1_000, overflow: 'drop-oldest' })
  await subscriber.ready()
  const before = heapAfterGc()
  const body = 'x'.repeat(200)
  const total = 100_000
  for (let i = 0; i < total; i += 1_000)
    await Promise.all(Array.from({ length: 1_000 }, (_, j) => publisher.publish('feed', { id: i + j, body })))
  // Every message is in once the last one is: one connection, in order.
  const deadline = Date.now() + 30_000
  while (dropped < total - 1_000 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50))
  const grown = heapAfterGc() - before
  expect(dropped).toBe(total - 1_000)
  expect(overflowEvents).toBe(total - 1_000)
  // 100,000 decoded messages of ~230 bytes would be well over 25 MB; the 1,000 kept are under 1.
  expect(grown).toBeLessThan(8 * 1024 * 1024)
  const kept: number[] = []
  for (let i = 0; i < 1_000; i++) kept.push((await feed.next()).value!.id)
  expect(kept).toEqual(Array.from({ length: 1_000 }, (_, i) => total - 1_000 + i))
  await feed.return?.()
  await Promise.all([publisher.close(), subscriber.close()])
}, 60_000)
