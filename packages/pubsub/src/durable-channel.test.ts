import { spawn } from 'node:child_process'
import { subscribe, unsubscribe } from 'node:diagnostics_channel'
import { fileURLToPath } from 'node:url'
import { EVENT_CHANNEL } from '@rp/core'
import { type RedisServer, runWorker, startRedis } from '@rp/testing'
import { describeEachTarget, eventually, expectInvalidArguments, uniquePrefix } from '@rp/testing/vitest'
import { Redis } from 'ioredis'
import { describe, expect, inject, it, onTestFinished } from 'vitest'
import { DurableChannel } from './index.js'

// A worker process (consume.worker.ts) on this target, for a channel under `prefix`.
const WORKER = fileURLToPath(new URL('./consume.worker.ts', import.meta.url))

describeEachTarget('DurableChannel', (target) => {
  const workerEnv = (prefix: string) => ({
    RP_PREFIX: prefix,
    ...(target.kind === 'cluster'
      ? { RP_CLUSTER_NODES: JSON.stringify(inject('rpClusterNodes')) }
      : { RP_REDIS_URL: inject('rpRedisUrl') }),
  })
  const redis = target.client()
  const channel = (name = 'jobs') =>
    new DurableChannel<{ n: number }>({ redis, prefix: uniquePrefix('dc'), name })

  it('delivers every message once to a group, acknowledges it, and a restarted worker resumes from the group offset', async () => {
    const jobs = channel()
    for (let n = 0; n < 20; n++) await jobs.publish({ n })
    const seen: number[] = []
    const first = jobs.consume(
      'g',
      ({ n }) => {
        seen.push(n)
      },
      { concurrency: 4, blockMs: 100 },
    )
    await eventually(() => seen.length === 20)
    await first.close()
    for (let n = 20; n < 30; n++) await jobs.publish({ n })
    const again: number[] = []
    const second = jobs.consume(
      'g',
      ({ n }) => {
        again.push(n)
      },
      { blockMs: 100 },
    )
    await eventually(() => again.length === 10)
    await second.close()
    expect(seen.sort((a, b) => a - b)).toEqual(Array.from({ length: 20 }, (_, i) => i))
    expect(again).toEqual(Array.from({ length: 10 }, (_, i) => 20 + i))
    const stats = await jobs.stats()
    expect(stats).toMatchObject({ length: 30, deadLettered: 0, groups: [{ name: 'g', pending: 0, lag: 0 }] })
  })

  it('a group that starts now skips the backlog; startAt start (the default) handles it', async () => {
    const jobs = channel()
    await jobs.publish({ n: 1 })
    const now: number[] = []
    const late = jobs.consume(
      'late',
      ({ n }) => {
        now.push(n)
      },
      { startAt: 'now', blockMs: 100 },
    )
    await eventually(async () => (await jobs.stats()).groups.length === 1)
    await jobs.publish({ n: 2 })
    await eventually(() => now.length === 1)
    expect(now).toEqual([2])
    await late.close()
  })

  it('moves an entry whose handler always fails to the dead letters after maxDeliveries, and retry puts it back', async () => {
    const jobs = channel()
    let calls = 0
    await jobs.publish({ n: 42 })
    const worker = jobs.consume(
      'g',
      () => {
        calls++
        throw new Error('always')
      },
      { maxDeliveries: 3, visibilityTimeoutMs: 100, blockMs: 50 },
    )
    await eventually(async () => (await jobs.stats()).deadLettered === 1, 10_000, 'a dead letter')
    await worker.close()
    expect(calls).toBe(3)
    const [letter] = await jobs.deadLetters().list()
    expect(letter).toMatchObject({ message: { n: 42 }, group: 'g', deliveries: 3 })
    expect((await jobs.stats()).groups[0]).toMatchObject({ pending: 0 })
    const seen: number[] = []
    expect(await jobs.deadLetters().retry(letter!.id)).toMatch(/^\d+-\d+$/)
    const fixed = jobs.consume(
      'g',
      ({ n }) => {
        seen.push(n)
      },
      { blockMs: 50 },
    )
    await eventually(() => seen.length === 1)
    await fixed.close()
    expect(await jobs.deadLetters().purge()).toBe(0)
  })

  it('a dead letter of one group leaves the other groups alone, and its retry goes to that group only', async () => {
    const jobs = channel()
    await jobs.publish({ n: 7 })
    const other: number[] = []
    const good = jobs.consume(
      'audit',
      ({ n }) => {
        other.push(n)
      },
      { blockMs: 50 },
    )
    const bad = jobs.consume(
      'mail',
      () => {
        throw new Error('down')
      },
      { maxDeliveries: 1, visibilityTimeoutMs: 100, blockMs: 50 },
    )
    await eventually(async () => (await jobs.stats()).deadLettered === 1, 10_000, 'a dead letter')
    await bad.close()
    const [letter] = await jobs.deadLetters().list()
    await jobs.deadLetters().retry(letter!.id)
    const mail: number[] = []
    const fixed = jobs.consume(
      'mail',
      ({ n }) => {
        mail.push(n)
      },
      { blockMs: 50 },
    )
    await eventually(() => mail.length === 1)
    // audit saw the original once, and skipped the retry meant for mail.
    await eventually(async () => (await jobs.stats()).groups.every((g) => g.pending === 0 && g.lag === 0))
    expect(other).toEqual([7])
    await Promise.all([good.close(), fixed.close()])
  })

  it('3 worker processes handle 10,000 messages with one SIGKILLed midway: none lost, duplicates counted', async () => {
    const prefix = uniquePrefix('dck')
    const jobs = new DurableChannel<{ n: number }>({ redis, prefix, name: 'jobs' })
    for (let i = 0; i < 10_000; i += 500)
      await Promise.all(Array.from({ length: 500 }, (_, j) => jobs.publish({ n: i + j })))
    const env = workerEnv(prefix)
    const victim = spawn(process.execPath, ['--import', 'tsx', '--conditions=@rp/source', WORKER], {
      env: { ...process.env, ...env, RP_WORKER: 'victim' },
      stdio: 'ignore',
    })
    const survivors = [0, 1].map((w) => runWorker<{ ok: boolean }>(WORKER, { ...env, RP_WORKER: String(w) }))
    const handled = `${prefix}:{handled}`
    await eventually(async () => (await redis.hlen(handled)) > 2_000, 30_000, 'work to be under way')
    victim.kill('SIGKILL')
    await eventually(async () => (await redis.hlen(handled)) === 10_000, 60_000, 'every message handled')
    await redis.set(`${prefix}:stop`, '1', 'PX', 60_000)
    await Promise.all(survivors)
    const counts = Object.values(await redis.hgetall(handled)).map(Number)
    const duplicates = counts.filter((c) => c > 1).length
    // At-least-once: whatever the victim took and never acknowledged was handled again.
    expect(counts.every((c) => c >= 1)).toBe(true)
    expect(duplicates).toBeLessThan(200)
    console.log(`DurableChannel SIGKILL test: 10,000 handled, ${duplicates} handled twice`)
  }, 120_000)

  it('a worker process started after another stopped resumes from the group offset: nothing again, nothing lost', async () => {
    const prefix = uniquePrefix('dcr')
    const jobs = new DurableChannel<{ n: number }>({ redis, prefix, name: 'jobs' })
    const env = workerEnv(prefix)
    const handled = `${prefix}:{handled}`
    for (const [run, from] of [
      ['first', 0],
      ['second', 500],
    ] as const) {
      // Published while no process consumes: the second half lands between the two processes.
      await Promise.all(Array.from({ length: 500 }, (_, i) => jobs.publish({ n: from + i })))
      await redis.del(`${prefix}:stop`)
      const worker = runWorker<{ ok: boolean }>(WORKER, { ...env, RP_WORKER: run })
      await eventually(
        async () => (await redis.hlen(handled)) === from + 500,
        30_000,
        `the ${run} process's work`,
      )
      await redis.set(`${prefix}:stop`, '1', 'PX', 60_000)
      expect(await worker).toEqual({ ok: true })
    }
    const counts = Object.values(await redis.hgetall(handled)).map(Number)
    expect(counts.length).toBe(1_000)
    expect(counts.every((c) => c === 1)).toBe(true)
  }, 90_000)

  it('keeps the bytes of a codec that writes binary', async () => {
    const bytes = new DurableChannel<{ bytes: number[] }>({
      redis,
      prefix: uniquePrefix('dc'),
      name: 'bin',
      codec: {
        encode: (v) => Buffer.from((v as { bytes: number[] }).bytes),
        decode: (b) => ({ bytes: [...b] }),
      },
    })
    const sent = [255, 0, 128, 195, 40, 10]
    await bytes.publish({ bytes: sent })
    const got: number[][] = []
    const worker = bytes.consume('g', (m) => {
      got.push(m.bytes)
    })
    await eventually(() => got.length === 1)
    await worker.close()
    expect(got[0]).toEqual(sent)
  })

  it('leaves the group on close when nothing is pending, so restarted workers do not pile up', async () => {
    const jobs = channel()
    for (let round = 0; round < 3; round++) {
      await jobs.publish({ n: round })
      let handled = 0
      const worker = jobs.consume('g', () => void handled++, { blockMs: 100 })
      await eventually(() => handled === 1)
      await worker.close()
    }
    expect((await jobs.stats()).groups[0]?.consumers).toBe(0)
  })

  it("takes over a dead consumer's whole backlog as fast as it can handle it", async () => {
    const jobs = channel()
    for (let n = 0; n < 30; n++) await jobs.publish({ n })
    // A consumer that takes all 30 and never acknowledges them.
    let taken = 0
    const dead = jobs.consume('g', () => new Promise(() => void taken++), {
      concurrency: 30,
      consumer: 'dead',
    })
    await eventually(() => taken === 30)
    await dead.close({ graceMs: 1 })
    const seen = new Set<number>()
    const started = performance.now()
    const worker = jobs.consume('g', ({ n }) => void seen.add(n), {
      visibilityTimeoutMs: 1_000,
      blockMs: 50,
    })
    // One claim per half visibility timeout would take 15 s; the scan goes on while there is room.
    await eventually(() => seen.size === 30, 12_000)
    await worker.close()
    expect(performance.now() - started).toBeLessThan(6_000)
  })

  it('rejects bad input, naming the argument', async () => {
    const jobs = channel()
    await expectInvalidArguments([[() => jobs.publish({ n: 1, f: () => 1 } as never), /^message/]])
    expect(() => jobs.consume('g', () => {}, { concurrency: 0 })).toThrow(/^concurrency:/)
    expect(() => jobs.consume('g', () => {}, { maxDeliveries: 0 })).toThrow(/^maxDeliveries:/)
    expect(() => jobs.consume('', () => {})).toThrow(/^group:/)
    // Sent to Redis as they are, a lone surrogate would reach it as U+FFFD: another group.
    expect(() => jobs.consume('g\uD800', () => {})).toThrow(/^group:/)
    expect(() => jobs.consume('g', () => {}, { consumer: 'c\uDFFF' })).toThrow(/^consumer:/)
    // A dead letter's id in full: XRANGE reads '1000' as every entry of that millisecond.
    await expectInvalidArguments([
      [() => jobs.deadLetters().retry('1000'), /^id:/],
      [() => jobs.deadLetters().retry('abc'), /^id:/],
    ])
    expect(() => new DurableChannel({ redis, name: 'x', maxlen: 5 } as never)).toThrow(/^maxlen:/)
  })
})

describe('DurableChannel consumers through an outage', () => {
  /** A server of the test's own, and a client that retries every 50 ms and fails fast meanwhile. */
  async function withServer(args: string[], body: (server: RedisServer, client: Redis) => Promise<void>) {
    const server = await startRedis({ ownServer: true, args })
    const client = new Redis(server.url, { maxRetriesPerRequest: 1, retryStrategy: () => 50 }).on(
      'error',
      () => {},
    )
    try {
      await body(server, client)
    } finally {
      client.disconnect()
      await server.stop()
    }
  }

  it('resume reading as soon as Redis is back, not after the backoff their failed reads grew', async () => {
    await withServer(['--appendonly', 'yes', '--appendfsync', 'always'], async (server, client) => {
      const jobs = new DurableChannel<{ n: number }>({ redis: client, name: 'outage' })
      const seen: number[] = []
      const worker = jobs.consume('g', ({ n }) => void seen.push(n), { blockMs: 200 })
      onTestFinished(() => worker.close())
      await jobs.publish({ n: 1 })
      await eventually(() => seen.length === 1)
      // Three seconds of failed reads: the consumer's backoff reaches its 5 s cap.
      await server.kill()
      await new Promise((resolve) => setTimeout(resolve, 3_000))
      await server.restart()
      await eventually(() => client.status === 'ready')
      await jobs.publish({ n: 2 })
      const published = performance.now()
      await eventually(() => seen.length === 2, 6_000)
      expect(performance.now() - published).toBeLessThan(600)
    })
  })

  it('create their group again when Redis comes back without it, and read what was published since', async () => {
    await withServer([], async (server, client) => {
      const events: Array<{ event: string }> = []
      const onEvent = (e: unknown) => void events.push(e as { event: string })
      subscribe(EVENT_CHANNEL, onEvent)
      const jobs = new DurableChannel<{ n: number }>({ redis: client, name: 'lost' })
      const seen: number[] = []
      const worker = jobs.consume('g', ({ n }) => void seen.push(n), { blockMs: 200, startAt: 'now' })
      try {
        await eventually(async () => (await jobs.stats()).groups.length === 1)
        await jobs.publish({ n: 1 })
        await eventually(() => seen.length === 1)
        // No persistence: the server comes back empty, the stream and the group gone.
        await server.kill()
        await server.restart()
        await eventually(() => client.status === 'ready')
        await jobs.publish({ n: 2 })
        await eventually(() => seen.includes(2), 6_000)
        expect(seen).toEqual([1, 2])
        expect(events.some((e) => e.event === 'group-recreated')).toBe(true)
      } finally {
        await worker.close()
        unsubscribe(EVENT_CHANNEL, onEvent)
      }
    })
  })

  it('create their group again each time it is lost, even before a read succeeds in between', async () => {
    await withServer([], async (server, client) => {
      const admin = new Redis(server.url).on('error', () => {})
      const jobs = new DurableChannel<{ n: number }>({ redis: client, name: 'twice' })
      const stream = jobs.internals.stream
      const seen: number[] = []
      let recreated = 0
      // The moment the worker creates the group again, it is destroyed again: twice.
      const onEvent = (e: unknown) => {
        if ((e as { event: string }).event !== 'group-recreated') return
        if (++recreated <= 2) admin.xgroup('DESTROY', stream, 'g').catch(() => {})
      }
      subscribe(EVENT_CHANNEL, onEvent)
      const worker = jobs.consume('g', ({ n }) => void seen.push(n), { blockMs: 200 })
      try {
        await eventually(async () => (await jobs.stats()).groups.length === 1)
        await admin.xgroup('DESTROY', stream, 'g')
        await eventually(() => recreated >= 3, 15_000, 'a third re-creation')
        await jobs.publish({ n: 1 })
        await eventually(() => seen.includes(1), 10_000)
      } finally {
        unsubscribe(EVENT_CHANNEL, onEvent)
        await worker.close()
        admin.disconnect()
      }
    })
  })
})

describe('DurableChannel across a Redis restart with appendonly', () => {
  it('keeps every acknowledged publish', async () => {
    const server: RedisServer = await startRedis({
      ownServer: true,
      args: ['--appendonly', 'yes', '--appendfsync', 'always'],
    })
    const client = new Redis(server.url, { maxRetriesPerRequest: 1, retryStrategy: () => 50 }).on(
      'error',
      () => {},
    )
    try {
      const jobs = new DurableChannel<{ n: number }>({ redis: client, name: 'aof' })
      const ids: string[] = []
      for (let n = 0; n < 100; n++) ids.push(await jobs.publish({ n }))
      await server.kill()
      await server.restart()
      await eventually(() => client.status === 'ready')
      expect((await jobs.stats()).length).toBe(100)
      const seen: number[] = []
      const worker = jobs.consume(
        'g',
        ({ n }) => {
          seen.push(n)
        },
        { blockMs: 50 },
      )
      await eventually(() => seen.length === 100)
      await worker.close()
    } finally {
      client.disconnect()
      await server.stop()
    }
  })
})
