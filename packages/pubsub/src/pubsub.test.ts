import { describeEachTarget, eventually, expectInvalidArguments, uniquePrefix } from '@rp/testing/vitest'
import { expect, it } from 'vitest'
import { BufferOverflowError, type MessageMeta, PubSub } from './index.js'

type Events = {
  'user:events': { userId: string; action: string }
  'orders:eu': { id: number }
  'orders:us': { id: number }
  raw: Buffer
}

describeEachTarget('PubSub', (target) => {
  const buses: Array<PubSub<Events>> = []
  const bus = (options: Partial<ConstructorParameters<typeof PubSub<Events>>[0]> = {}) => {
    const b = new PubSub<Events>({ redis: target.client(), prefix: uniquePrefix('ps'), ...options })
    buses.push(b)
    return b
  }

  it('dispatches to every handler of a channel and of matching patterns; a throwing handler hurts no other', async () => {
    const b = bus()
    const seen: string[] = []
    const errors: unknown[] = []
    b.on('handler-error', ({ error }) => errors.push(error))
    await b.subscribe('user:events', (m) => {
      seen.push(`a:${m.action}`)
    })
    await b.subscribe('user:events', () => {
      throw new Error('boom')
    })
    await b.subscribe('user:events', async () => {
      throw new Error('async boom')
    })
    await b.subscribe('user:events', (m, meta: MessageMeta) => {
      seen.push(`b:${m.action}:${meta.channel}`)
    })
    await b.psubscribe('orders:*', (m, meta) => {
      seen.push(`p:${(m as { id: number }).id}:${meta.channel}:${meta.pattern}`)
    })
    await b.psubscribe('user:*', (m) => {
      seen.push(`u:${(m as { action: string }).action}`)
    })
    await b.publish('user:events', { userId: '1', action: 'login' })
    await b.publish('orders:eu', { id: 7 })
    await b.publish('orders:us', { id: 8 })
    await eventually(() => seen.length === 5 && errors.length === 2)
    expect(seen.sort()).toEqual([
      'a:login',
      'b:login:user:events',
      'p:7:orders:eu:orders:*',
      'p:8:orders:us:orders:*',
      'u:login',
    ])
  })

  it('passes Buffers through, and reports a message it did not write instead of delivering it', async () => {
    const prefix = uniquePrefix('raw')
    const b = bus({ prefix })
    const got: unknown[] = []
    const bad: unknown[] = []
    b.on('decode-error', (e) => bad.push(e))
    await b.subscribe('raw', (m) => {
      got.push(m)
    })
    await b.publish('raw', Buffer.from([0, 255, 10]))
    await eventually(() => got.length === 1)
    expect(Buffer.isBuffer(got[0]) && [...(got[0] as Buffer)]).toEqual([0, 255, 10])
    // Someone PUBLISHes by hand on the same Redis channel: reported, never delivered as a message.
    await target.client().publish(`${prefix}:{raw}`, '{"not":"ours"}')
    await b.publish('raw', Buffer.from([1]))
    await eventually(() => got.length === 2 && bad.length === 1)
    expect(bad[0]).toMatchObject({ channel: 'raw' })
  })

  it("sends a tick's publishes to one channel as one frame, delivered in order; batch: false sends each alone", async () => {
    const prefix = uniquePrefix('pack')
    const b = bus({ prefix })
    const got: number[] = []
    await b.subscribe('orders:eu', (m) => {
      got.push(m.id)
    })
    // What Redis carries, seen by a plain subscriber: one frame per pack.
    const raw = target.client()
    const frames: string[] = []
    raw.on('messageBuffer', (_: Buffer, message: Buffer) => frames.push(message.toString()))
    await raw.subscribe(`${prefix}:{orders%3Aeu}`)
    const sent = await Promise.allSettled([
      ...Array.from({ length: 300 }, (_, id) => b.publish('orders:eu', { id })),
      // A message that cannot be encoded fails alone; the rest of its tick is sent.
      b.publish('orders:eu', { id: 1n } as never),
    ])
    expect(sent.slice(0, 300).every((r) => r.status === 'fulfilled')).toBe(true)
    expect((sent[300] as PromiseRejectedResult).reason).toMatchObject({ argument: 'message.id' })
    await eventually(() => got.length === 300)
    expect(got).toEqual(Array.from({ length: 300 }, (_, id) => id))
    // 256 messages at most in one pack: two frames for the 300.
    await eventually(() => frames.length >= 2)
    expect(frames.length).toBe(2)
    expect(frames[0]!.startsWith('a:[{"id":0},{"id":1},')).toBe(true)
    const receivers = new Set(sent.slice(0, 300).map((r) => (r as PromiseFulfilledResult<number>).value))
    expect(receivers.size).toBeLessThanOrEqual(2)
    if (target.kind === 'standalone') expect([...receivers]).toEqual([2])
    // Only consecutive publishes merge: a Buffer between two JSON messages keeps its place, and a
    // message alone in its tick keeps the plain form.
    const raws: unknown[] = []
    await b.subscribe('raw', (m) => {
      raws.push(m)
    })
    await raw.subscribe(`${prefix}:{raw}`)
    await Promise.all([
      b.publish('raw', 1 as never),
      b.publish('raw', Buffer.from('2')),
      b.publish('raw', 3 as never),
      b.publish('raw', 4 as never),
    ])
    await eventually(() => raws.length === 4)
    expect(raws.map(String)).toEqual(['1', '2', '3', '4'])
    await eventually(() => frames.length >= 5)
    expect(frames.slice(2)).toEqual(['j:1', 'b:2', 'a:[3,4]'])
    await b.publish('orders:eu', { id: 300 })
    await eventually(() => got.length === 301)
    await eventually(() => frames.length >= 6)
    expect(frames.slice(5)).toEqual(['j:{"id":300}'])
    frames.splice(0)
    const solo = bus({ prefix, batch: false })
    await Promise.all([1, 2, 3].map((id) => solo.publish('orders:eu', { id: 1_000 + id })))
    await eventually(() => got.length === 304)
    await eventually(() => frames.length >= 3)
    expect(frames).toEqual(['j:{"id":1001}', 'j:{"id":1002}', 'j:{"id":1003}'])
  })

  it('reports a schema validation that never settles after timeoutMs, and delivers the messages behind it', async () => {
    const prefix = uniquePrefix('stuck')
    const stuckOnTwo = {
      '~standard': {
        version: 1,
        vendor: 'test',
        validate: (value: unknown) =>
          (value as { id: number }).id === 2 ? new Promise(() => {}) : Promise.resolve({ value }),
      },
    } as const
    const b = bus({ prefix, timeoutMs: 200, schemas: { 'orders:eu': stuckOnTwo } as never })
    const got: number[] = []
    const errors: unknown[] = []
    b.on('decode-error', ({ error }) => errors.push(error))
    await b.subscribe('orders:eu', (m) => {
      got.push(m.id)
    })
    const publisher = bus({ prefix })
    await Promise.all([1, 2, 3].map((id) => publisher.publish('orders:eu', { id })))
    await eventually(() => got.length === 2)
    expect(got).toEqual([1, 3])
    expect(errors).toHaveLength(1)
    expect(errors[0]).toMatchObject({ name: 'TimeoutError' })
  })

  it('delivers in publish order through an async schema, within a pack and across packs', async () => {
    const prefix = uniquePrefix('schema')
    // Odd ids take a timer to validate: without one validation queue per channel they overtake.
    const slowOdd = {
      '~standard': {
        version: 1,
        vendor: 'test',
        validate: async (value: unknown) => {
          if ((value as { id: number }).id % 2) await new Promise((resolve) => setTimeout(resolve, 1))
          return { value }
        },
      },
    } as const
    const b = bus({ prefix, schemas: { 'orders:eu': slowOdd } as never })
    const got: number[] = []
    await b.subscribe('orders:eu', (m) => {
      got.push(m.id)
    })
    // The publisher has no schema: its 300 publishes leave in order, as two packs.
    const publisher = bus({ prefix })
    await Promise.all(Array.from({ length: 300 }, (_, id) => publisher.publish('orders:eu', { id })))
    await eventually(() => got.length === 300)
    expect(got).toEqual(Array.from({ length: 300 }, (_, id) => id))
  })

  it('unsubscribing the last handler unsubscribes from Redis', async () => {
    const prefix = uniquePrefix('unsub')
    const b = bus({ prefix })
    const got: unknown[] = []
    const one = await b.subscribe('user:events', (m) => {
      got.push(m)
    })
    const two = await b.subscribe('user:events', () => {})
    await two.unsubscribe()
    await b.publish('user:events', { userId: '1', action: 'x' })
    await eventually(() => got.length === 1)
    await one.unsubscribe()
    // PUBSUB NUMSUB on every node: nobody is subscribed to the channel any more.
    const client = target.client()
    const nodes = 'nodes' in client ? client.nodes('master') : [client]
    const counts = await Promise.all(
      nodes.map(async (n) => (await n.call('PUBSUB', 'CHANNELS', `${prefix}:*`)) as string[]),
    )
    expect(counts.flat()).toEqual([])
  })

  it('sequenced channels number every message; a subscriber that misses some reports the gap', async () => {
    const prefix = uniquePrefix('seq')
    const b = bus({ prefix, sequenced: ['user:events'] })
    const metas: MessageMeta[] = []
    const gaps: Array<{ channel: string; missed: number; from: number; to: number }> = []
    b.on('gap', (g) => gaps.push(g))
    await b.subscribe('user:events', (_, meta) => {
      metas.push(meta)
    })
    await b.publish('user:events', { userId: '1', action: 'a' })
    await b.publish('user:events', { userId: '1', action: 'b' })
    await eventually(() => metas.length === 2)
    // Three messages this subscriber never sees (as if lost in a disconnect): the counter moves on.
    await target.client().incrby(`${prefix}:{user%3Aevents}:seq`, 3)
    await b.publish('user:events', { userId: '1', action: 'c' })
    await eventually(() => metas.length === 3)
    expect(metas.map((m) => m.seq)).toEqual([1, 2, 6])
    expect(gaps).toEqual([{ channel: 'user:events', missed: 3, from: 3, to: 5 }])
  })

  it('replay gives back what a sequenced channel kept, from a sequence number on, to fill a gap', async () => {
    const b = bus({ sequenced: ['user:events'], replay: 100 })
    for (let i = 1; i <= 8; i++) await b.publish('user:events', { userId: String(i), action: 'login' })
    const kept = await b.replay('user:events', { fromSeq: 3 })
    expect(kept.map((k) => k.seq)).toEqual([3, 4, 5, 6, 7, 8])
    expect(kept[0]!.message).toEqual({ userId: '3', action: 'login' })
    expect((await b.replay('user:events')).length).toBe(8)
    await expect(b.replay('orders:eu')).rejects.toMatchObject({
      code: 'RP_INVALID_ARGUMENT',
      argument: 'channel',
    })
    await expect(b.replay('user:events', { fromSeq: -1 })).rejects.toMatchObject({ argument: 'fromSeq' })
    await expect(b.replay('user:events', { from: 2 } as never)).rejects.toMatchObject({ argument: 'from' })

    // More than one page (500 entries), read newest first and only back to fromSeq, in order.
    const many = bus({ sequenced: ['orders:eu'], replay: 2_000 })
    await Promise.all(Array.from({ length: 1_200 }, (_, i) => many.publish('orders:eu', { id: i })))
    const tail = await many.replay('orders:eu', { fromSeq: 100 })
    expect(tail.map((k) => k.seq)).toEqual(Array.from({ length: 1_101 }, (_, i) => 100 + i))
    expect(new Set(tail.map((k) => k.message.id)).size).toBe(1_101)
    await many.close()
    await expect(many.replay('orders:eu')).rejects.toThrow(/closed/)
  })

  it('iterate holds at most bufferSize messages for a slow consumer and applies the overflow policy', async () => {
    const b = bus()
    let overflowed = 0
    b.on('overflow', ({ dropped }) => {
      overflowed += dropped
    })
    const it1 = b.iterate('orders:eu', { bufferSize: 10, overflow: 'drop-oldest' })
    await b.ready()
    for (let i = 0; i < 1_000; i++) await b.publish('orders:eu', { id: i })
    await eventually(() => overflowed === 990, 15_000, '990 overflow events')
    const kept: number[] = []
    for (let i = 0; i < 10; i++) kept.push(((await it1.next()).value as { id: number }).id)
    expect(kept).toEqual(Array.from({ length: 10 }, (_, i) => 990 + i))
    await it1.return?.()
    expect((await it1.next()).done).toBe(true)

    const strict = b.iterate('orders:us', { bufferSize: 2, overflow: 'error' })
    await b.ready()
    for (let i = 1; i <= 3; i++) await b.publish('orders:us', { id: i })
    await eventually(() => overflowed === 991, 15_000, 'the third message to overflow')
    // The buffer is gone with the error: the consumer learns it fell behind.
    await expect(strict.next()).rejects.toBeInstanceOf(BufferOverflowError)
  })

  it('an aborted signal ends the iterator and unsubscribes', async () => {
    const prefix = uniquePrefix('abort')
    const b = bus({ prefix })
    const controller = new AbortController()
    const iterator = b.iterate('user:events', { signal: controller.signal })
    await b.ready()
    await b.publish('user:events', { userId: '1', action: 'x' })
    expect((await iterator.next()).value).toEqual({ userId: '1', action: 'x' })
    controller.abort()
    expect((await iterator.next()).done).toBe(true)
    const client = target.client()
    const nodes = 'nodes' in client ? client.nodes('master') : [client]
    await eventually(
      async () => {
        const channels = await Promise.all(
          nodes.map((n) => n.call('PUBSUB', 'CHANNELS', `${prefix}:*`) as Promise<string[]>),
        )
        return channels.flat().length === 0
      },
      5_000,
      'the iterator to unsubscribe',
    )
  })

  it('drop-newest keeps the first bufferSize messages; close() ends every open iterator', async () => {
    const b = bus()
    let dropped = 0
    b.on('overflow', (e) => {
      dropped += e.dropped
    })
    const keep = b.iterate('orders:eu', { bufferSize: 3, overflow: 'drop-newest' })
    await b.ready()
    for (let i = 0; i < 10; i++) await b.publish('orders:eu', { id: i })
    await eventually(() => dropped === 7)
    const ids: number[] = []
    for (let i = 0; i < 3; i++) ids.push(((await keep.next()).value as { id: number }).id)
    expect(ids).toEqual([0, 1, 2])
    const waiting = keep.next()
    await b.close()
    expect((await waiting).done).toBe(true)
  })

  it('rejects bad input, naming the argument', async () => {
    const b = bus()
    await expectInvalidArguments([
      [() => b.subscribe('' as never, () => {}), /^channel:/],
      [() => b.subscribe('orders:*' as never, () => {}), /^channel:.*psubscribe/],
      [() => b.psubscribe('orders:eu', () => {}), /^pattern:.*subscribe/],
      [() => b.publish('user:events', { f: () => 1 } as never), /^message/],
      [() => b.subscribe('user:events', 'nope' as never), /^handler:/],
    ])
    expect(() => b.iterate('user:events', { bufferSize: 0 })).toThrow(/^bufferSize:/)
    expect(() => new PubSub({ redis: target.client(), batch: 'no' as never })).toThrow(/^batch:/)
    expect(() => new PubSub({ redis: target.client(), schemas: { a: 5 } as never })).toThrow(/^schemas\.a:/)
    expect(() => new PubSub({ redis: target.client(), schemas: new Map() as never })).toThrow(/^schemas:/)
    expect(() => new PubSub(new Map() as never)).toThrow(/^options:/)
    expect(() => new PubSub({ redis: target.client(), sharded: true, prefx: 'x' } as never)).toThrow(
      /^prefx:/,
    )
  })
  it('treats channels named like Object.prototype members as channels like any other', async () => {
    const b = bus() as unknown as PubSub<Record<string, unknown>>
    const got: string[] = []
    const names = ['constructor', '__proto__', 'toString', 'hasOwnProperty']
    for (const name of names) await b.subscribe(name, (m) => got.push(`${name}=${(m as { x: string }).x}`))
    for (const name of names) await b.publish(name, { x: name })
    await eventually(() => got.length === names.length)
    expect(got.sort()).toEqual(names.map((n) => `${n}=${n}`).sort())
  })

  it('resolves a second subscriber of a channel only once the subscription is active', async () => {
    const b = bus()
    const got: number[] = []
    const first = b.subscribe('orders:eu', () => {})
    await b.subscribe('orders:eu', (m) => got.push(m.id))
    // No wait of its own: a message published right away reaches the second handler.
    await b.publish('orders:eu', { id: 1 })
    await eventually(() => got.length === 1)
    await first
  })

  it('gives parallel next() calls one message each, in order', async () => {
    const b = bus()
    const subscribed = new Promise((resolve) => b.on('subscribed', resolve))
    const iterator = b.iterate('orders:us')
    const [a, c] = [iterator.next(), iterator.next()]
    await subscribed
    await b.publish('orders:us', { id: 1 })
    await b.publish('orders:us', { id: 2 })
    expect([(await a).value, (await c).value]).toEqual([{ id: 1 }, { id: 2 }])
    await iterator.return?.()
  })

  it('matches patterns by characters, with sets read as Redis reads them', async () => {
    const b = bus() as unknown as PubSub<Record<string, unknown>>
    const got: string[] = []
    // A character outside the BMP is one character; a reversed range is swapped; \- is a dash.
    for (const pattern of ['room😀*', 'x[z-a]', 'y[a\\-c]'])
      await b.psubscribe(pattern, (_m, meta) => got.push(`${pattern}>${meta.channel}`))
    for (const channel of ['room😀1', 'xb', 'x-', 'y-', 'yb']) await b.publish(channel, 1)
    await eventually(() => got.length === 3)
    expect(got.sort()).toEqual(['room😀*>room😀1', 'x[z-a]>xb', 'y[a\\-c]>y-'].sort())
  })

  it('refuses to publish once closed, as it refuses to subscribe', async () => {
    const b = bus()
    await b.close()
    await expect(b.publish('orders:eu', { id: 1 })).rejects.toMatchObject({ name: 'InvalidArgumentError' })
  })
})
