import { standaloneClient, uniquePrefix } from '@rp/testing/vitest'
import { afterAll, describe, expect, it } from 'vitest'
import { AbortError } from './errors.js'
import { Notifier } from './notifier.js'
import { waitForRelease } from './wait.js'

const redis = standaloneClient()
const notifier = new Notifier(redis)
afterAll(async () => {
  await notifier.close()
  await redis.quit()
})

class Busy extends Error {}

/** A slot in Redis that attempts claim with SET NX and releases with DEL + PUBLISH. */
function slot() {
  const key = uniquePrefix('slot')
  const channel = `${key}:released`
  const attempts: number[] = []
  return {
    key,
    channel,
    attempts,
    claim: async () => {
      attempts.push(performance.now())
      return { value: (await redis.set(key, '1', 'PX', 60_000, 'NX')) === 'OK' ? key : null }
    },
    release: async () => {
      await redis.del(key)
      await redis.publish(channel, 'free')
    },
  }
}

describe('waitForRelease', () => {
  it('returns at once when the first attempt succeeds, without subscribing', async () => {
    const s = slot()
    const value = await waitForRelease({
      what: 'claim',
      waitMs: 1_000,
      channel: s.channel,
      notifier,
      attempt: s.claim,
      timeout: () => new Busy(),
    })
    expect(value).toBe(s.key)
    expect(s.attempts).toHaveLength(1)
    expect(notifier.isListening(s.channel)).toBe(false)
  })

  it('wakes on the release message rather than its backoff, and polls little meanwhile', async () => {
    const s = slot()
    await redis.set(s.key, 'held', 'PX', 60_000)
    let wokeAt = 0
    const waiting = waitForRelease({
      what: 'claim',
      waitMs: 10_000,
      channel: s.channel,
      notifier,
      attempt: s.claim,
      timeout: () => new Busy(),
      backoff: () => 5_000,
    }).then((v) => {
      wokeAt = performance.now()
      return v
    })
    await new Promise((r) => setTimeout(r, 300))
    const releasedAt = performance.now()
    await s.release()
    expect(await waiting).toBe(s.key)
    expect(wokeAt - releasedAt).toBeLessThan(50)
    // The first attempt, the one right after subscribing, and the one the message triggered.
    expect(s.attempts).toHaveLength(3)
  })

  it('gives up with the caller’s error after waitMs, and abandons what it left behind', async () => {
    const s = slot()
    await redis.set(s.key, 'held', 'PX', 60_000)
    let abandoned = 0
    const started = performance.now()
    const failure = await waitForRelease({
      what: 'claim',
      waitMs: 200,
      channel: s.channel,
      notifier,
      attempt: s.claim,
      timeout: () => new Busy('still held'),
      abandon: async () => {
        abandoned++
      },
    }).catch((e: unknown) => e)
    expect(failure).toBeInstanceOf(Busy)
    expect(abandoned).toBe(1)
    expect(performance.now() - started).toBeLessThan(200 + 150)
  })

  it('stops with AbortError when the signal aborts mid-wait', async () => {
    const s = slot()
    await redis.set(s.key, 'held', 'PX', 60_000)
    const controller = new AbortController()
    const waiting = waitForRelease({
      what: "claim 'x'",
      waitMs: 10_000,
      signal: controller.signal,
      channel: s.channel,
      notifier,
      attempt: s.claim,
      timeout: () => new Busy(),
    })
    setTimeout(() => controller.abort(new Error('shutting down')), 100)
    await expect(waiting).rejects.toBeInstanceOf(AbortError)
  })
})
