import { standaloneClient } from '@rp/testing/vitest'
import { afterAll, expect, it } from 'vitest'
import { Notifier } from './notifier.js'

const redis = standaloneClient()
const publisher = standaloneClient()
const notifier = new Notifier(redis)
afterAll(async () => {
  await notifier.close()
  await Promise.all([redis.quit(), publisher.quit()])
})

it('wakes a waiter on its own message only', async () => {
  await notifier.listen('n:{a}')
  const started = performance.now()
  const mine = notifier.wait('n:{a}', 5_000, { message: 'me' })
  await publisher.publish('n:{a}', 'someone-else')
  await publisher.publish('n:{a}', 'me')
  await mine
  expect(performance.now() - started).toBeLessThan(1_000)
})

it('does not lose a message that lands between two waits', async () => {
  await notifier.listen('n:{b}')
  const attemptStarted = performance.now()
  // The message arrives while the caller is busy (say, running its acquire script)...
  await publisher.publish('n:{b}', 'me')
  await new Promise((r) => setTimeout(r, 50))
  // ...so the wait that follows returns at once instead of sleeping its full backoff.
  const started = performance.now()
  await notifier.wait('n:{b}', 5_000, { message: 'me', since: attemptStarted })
  expect(performance.now() - started).toBeLessThan(20)
  // A message from before the attempt does not count.
  const later = performance.now()
  await notifier.wait('n:{b}', 100, { message: 'me', since: later })
  expect(performance.now() - later).toBeGreaterThanOrEqual(95)
})

it('keeps its subscriptions across a reconnect when the app turned autoResubscribe off', async () => {
  const own = standaloneClient({ autoResubscribe: false })
  const local = new Notifier(own)
  try {
    await local.listen('n:{c}')
    // Drop the subscriber's connection: ioredis reconnects it, and must subscribe again.
    await publisher.client('KILL', 'TYPE', 'pubsub')
    const started = performance.now()
    const woke = local.wait('n:{c}', 5_000, { message: 'me' }).then(() => performance.now() - started)
    let done = false
    void woke.then(() => {
      done = true
    })
    while (!done && performance.now() - started < 5_000) {
      await publisher.publish('n:{c}', 'me')
      await new Promise((r) => setTimeout(r, 50))
    }
    expect(await woke).toBeLessThan(3_000)
  } finally {
    await local.close()
    await own.quit()
  }
})
