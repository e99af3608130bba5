import { describe, expect, it } from 'vitest'
import { isRpError, type RpError, TimeoutError } from './errors.js'
import { watchEvents } from './events.test-helpers.js'
import { Deadlines, withTimeout } from './timeout.js'

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))
const never = () => new Promise<never>(() => {})

describe.each([
  ['withTimeout', (p: Promise<unknown>, ms: number, op: string) => withTimeout(p, ms, op)],
  ['Deadlines', (p: Promise<unknown>, ms: number, op: string) => new Deadlines(ms).run(p, op)],
])('%s', (_, bound) => {
  it('passes a value or an error through untouched', async () => {
    await expect(bound(Promise.resolve(42), 1_000, 'op')).resolves.toBe(42)
    const error = new Error('boom')
    const failed = await bound(Promise.reject(error), 1_000, 'op').catch((e: unknown) => e)
    expect(failed === error || (failed as Error).cause === error).toBe(true)
  })

  it('rejects a call that never answers with a TimeoutError naming it, on time', async () => {
    const started = performance.now()
    const failure = await bound(never(), 80, 'cache.get').catch((e: unknown) => e)
    const took = performance.now() - started
    expect(failure).toBeInstanceOf(TimeoutError)
    expect((failure as Error).message).toContain('cache.get')
    expect(took).toBeGreaterThanOrEqual(79)
    expect(took).toBeLessThan(80 + 100)
  })
})

describe('Deadlines', () => {
  it('expires each call at its own deadline while others finish in between', async () => {
    const deadlines = new Deadlines(100)
    const started = performance.now()
    const outcomes: Array<{ i: number; at: number; timedOut: boolean }> = []
    const calls = [0, 1, 2, 3, 4, 5].map(async (i) => {
      await sleep(i * 30)
      // Odd calls answer after 10 ms; even ones never do.
      const work = i % 2 ? sleep(10).then(() => i) : never()
      const r = await deadlines.run(work, `call ${i}`).catch((e: unknown) => e)
      outcomes.push({ i, at: performance.now() - started, timedOut: r instanceof TimeoutError })
    })
    await Promise.all(calls)
    for (const o of outcomes) {
      if (o.i % 2) {
        expect(o.timedOut).toBe(false)
        expect(o.at).toBeLessThan(o.i * 30 + 90)
      } else {
        expect(o.timedOut).toBe(true)
        expect(o.at).toBeGreaterThanOrEqual(o.i * 30 + 99)
        expect(o.at).toBeLessThan(o.i * 30 + 100 + 80)
      }
    }
  })

  it('observes a late failure after the timeout, so it never becomes an unhandled rejection', async () => {
    const unhandled: unknown[] = []
    const onUnhandled = (reason: unknown) => unhandled.push(reason)
    process.on('unhandledRejection', onUnhandled)
    try {
      const deadlines = new Deadlines(20)
      const late = sleep(60).then(() => {
        throw new Error('late')
      })
      await expect(deadlines.run(late, 'op')).rejects.toBeInstanceOf(TimeoutError)
      await sleep(80)
      expect(unhandled).toEqual([])
    } finally {
      process.off('unhandledRejection', onUnhandled)
    }
  })

  it('stays correct across thousands of calls that finish out of order', async () => {
    const deadlines = new Deadlines(150)
    const results = await Promise.all(
      Array.from({ length: 5_000 }, (_, i) =>
        deadlines.run(
          sleep(i % 7).then(() => i),
          'op',
        ),
      ),
    )
    expect(results).toEqual(Array.from({ length: 5_000 }, (_, i) => i))
    // After a quiet spell, a new call still gets its own timer.
    await sleep(200)
    await expect(deadlines.run(never(), 'op')).rejects.toBeInstanceOf(TimeoutError)
  })

  describe('outcome', () => {
    const settle = (p: Promise<unknown>) =>
      p.then(
        () => 'resolved',
        (e: unknown) => (e instanceof TimeoutError ? 'timeout' : 'rejected'),
      )

    it('hears each call once, and a timeout that starts another call leaves every call timed', async () => {
      const deadlines = new Deadlines(40)
      const heard: Array<RpError | undefined> = []
      let started: Promise<string> | undefined
      const first = settle(
        deadlines.run(never(), 'op', (error) => {
          heard.push(error)
          // What a failure runs may use the same list again, from inside its expiry.
          started ??= settle(deadlines.run(never(), 'op'))
        }),
      )
      await sleep(10)
      const second = settle(deadlines.run(never(), 'op', (error) => heard.push(error)))
      const ok = settle(deadlines.run(Promise.resolve(1), 'op', (error) => heard.push(error)))
      expect(await ok).toBe('resolved')
      expect(await first).toBe('timeout')
      expect(await Promise.race([second, sleep(400).then(() => 'hung')])).toBe('timeout')
      expect(await Promise.race([started!, sleep(400).then(() => 'hung')])).toBe('timeout')
      expect(heard.map((e) => (e === undefined ? 'ok' : e.code))).toEqual(['ok', 'RP_TIMEOUT', 'RP_TIMEOUT'])
    })

    it('an outcome that throws is reported, and neither its caller nor later calls are left hanging', async () => {
      await watchEvents(async ({ events, uncaught }) => {
        const deadlines = new Deadlines(30)
        const boom = () => {
          throw new Error('outcome threw')
        }
        expect(await settle(deadlines.run(Promise.resolve(1), 'op', boom))).toBe('resolved')
        expect(await settle(deadlines.run(never(), 'op', boom))).toBe('timeout')
        // The timer was armed again after the throwing timeout: a later call still ends on time.
        const later = settle(deadlines.run(never(), 'op'))
        expect(await Promise.race([later, sleep(300).then(() => 'hung')])).toBe('timeout')
        expect(events.filter((e) => e.event === 'callback-error' && e.callback === 'outcome')).toHaveLength(2)
        expect(uncaught).toEqual([])
      })
    })

    it('a promise that is not one rejects at once with an @rp error, and the outcome hears it then', async () => {
      const deadlines = new Deadlines(10_000)
      const heard: Array<RpError | undefined> = []
      const started = performance.now()
      const error = await deadlines
        .run(42 as unknown as Promise<number>, 'op', (e) => heard.push(e))
        .catch((e: unknown) => e)
      expect(performance.now() - started).toBeLessThan(1_000)
      expect(isRpError(error)).toBe(true)
      expect(heard).toHaveLength(1)
      expect(heard[0]).toBe(error)
    })
  })
})
