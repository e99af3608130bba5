import { startCluster, startRedis } from '@rp/testing'
import { describeEachTarget, fillToMaxmemory, uniquePrefix } from '@rp/testing/vitest'
import calculateSlot from 'cluster-key-slot'
import { Cluster, Redis } from 'ioredis'
import { describe, expect, it } from 'vitest'
import { MAX_BATCH_CALLS } from './batch.js'
import { masters } from './client.js'
import { RedisOutOfMemoryError, RedisUnavailableError, ScriptError, TimeoutError } from './errors.js'
import { RedisGuard } from './guard.js'
import { keyspace } from './keys.js'
import { defineScript, SOLO_ARGS } from './script.js'

// KEYS[1]: a counter. ARGV[1]: increment. Reply: the new value. A string in the key fails the call.
const incr = defineScript<number>({
  name: 'test.batch.incr',
  keys: 1,
  lua: `return redis.call('INCRBY', KEYS[1], ARGV[1])`,
})

// ARGV[1] picks the reply's shape, so a batched reply can be compared with a lone one.
const shapes = defineScript({
  name: 'test.batch.shapes',
  keys: 1,
  flags: ['no-writes'],
  lua: `local s = ARGV[1]
if s == 'nil' then return nil end
if s == 'false' then return false end
if s == 'true' then return true end
if s == 'float' then return 3.7 end
if s == 'table' then return {1, 'a', {2, 'b'}, ARGV[2]} end
if s == 'holes' then return {1, nil, 3} end
if s == 'status' then return redis.status_reply('FINE') end
if s == 'error' then return redis.error_reply('ERR chosen') end
if s == 'raise' then error('raised') end
return KEYS[1] .. '|' .. s`,
})

const parsed = defineScript<number>({
  name: 'test.batch.parsed',
  keys: 1,
  flags: ['no-writes'],
  lua: `return ARGV[1]`,
  decode: (raw) => {
    const n = JSON.parse(raw as string) as number
    if (typeof n !== 'number') throw new TypeError('not a number')
    return n
  },
})

/** Script calls the servers ran, EVALSHA and EVAL alike (a client's first call of a script is EVAL). */
async function scriptCalls(nodes: Redis[]): Promise<{ evalsha: number; eval: number; all: number }> {
  let evalsha = 0
  let evals = 0
  for (const node of nodes) {
    const info = await node.info('commandstats')
    evalsha += Number(/cmdstat_evalsha:calls=(\d+)/.exec(info)?.[1] ?? 0)
    evals += Number(/cmdstat_eval:calls=(\d+)/.exec(info)?.[1] ?? 0)
  }
  return { evalsha, eval: evals, all: evalsha + evals }
}

// Like shapes, but without flags: scripts share a batch only when their flags are the same.
const tag = defineScript<string>({
  name: 'test.batch.tag',
  keys: 1,
  lua: `return KEYS[1] .. '|' .. ARGV[1]`,
})

const setTo = defineScript<string>({
  name: 'test.batch.set',
  keys: 1,
  lua: `return redis.call('SET', KEYS[1], ARGV[1])`,
  decode: (raw) => String(raw),
})

// KEYS[1]: a list. ARGV[1]: an entry to append. Reply: the list's length.
const append = defineScript<number>({
  name: 'test.batch.append',
  keys: 1,
  lua: `return redis.call('RPUSH', KEYS[1], ARGV[1])`,
})

// Two scripts whose setups define the same local name: each body must see its own. `seen` counts
// the calls that shared this setup, so a reply shows whether a batch ran it once for all its calls.
const scoped = (label: string) =>
  defineScript<[string, number, string, string]>({
    name: `test.batch.scoped.${label}`,
    keys: 1,
    flags: ['no-writes'],
    setup: `local shared = {n = 0}
local function who() return '${label}' end`,
    lua: `shared.n = shared.n + 1
local t = rp_time()
return {who(), shared.n, t[1], t[2]}`,
  })
const scopedA = scoped('a')
const scopedB = scoped('b')

describeEachTarget('tick batching', (target) => {
  const ks = keyspace(uniquePrefix('batch'))

  it('keeps the order calls were made in: across scripts, and before a plain command of the same tick', async () => {
    const redis = target.client()
    const key = ks.key('order', 'n')
    const other = ks.key('order2', 'n')
    const round = () => {
      const replies = Promise.all([
        incr.run(redis, [key], [1]),
        setTo.run(redis, [key], [10]),
        incr.run(redis, [other], [5]),
        incr.run(redis, [key], [1]),
      ])
      // Sent while the four wait for the end of the tick: it must not overtake them.
      return Promise.all([replies, redis.get(key)])
    }
    // A client's first call of a script is EVAL, so even the first round keeps its order on one
    // server. A cluster client loads a script on the first node it runs on; another node's first
    // call of it still answers NOSCRIPT, and its EVAL goes after what was sent meanwhile.
    if (target.kind === 'cluster') {
      await round()
      expect(await round()).toEqual([[12, 'OK', 10, 11], '11'])
    } else {
      expect(await round()).toEqual([[1, 'OK', 5, 11], '11'])
    }
  })

  it('merges consecutive mergeable calls of a tick into one call, bounded, never across a call between them', async () => {
    const redis = target.client()
    const key = ks.key('merge', 'log')
    // Each merged call appends its joined items to a list: the list shows what Redis received.
    const join = (items: readonly string[]) => [items.join('+')]
    const merge = (item: string, maxItems = 3) => ({ group: 'g', item, join, maxItems, maxChars: 1_000 })
    const replies = await Promise.all([
      append.runMerged(redis, [key], merge('a')),
      append.runMerged(redis, [key], merge('b')),
      append.run(redis, [key], ['plain']),
      append.runMerged(redis, [key], merge('c')),
      append.runMerged(redis, [key], merge('d')),
      append.runMerged(redis, [key], merge('e')),
      append.runMerged(redis, [key], merge('f')),
      append.runMerged(redis, [key], { ...merge('g'), group: 'other' }),
      append.runMerged(redis, [key], merge('x'.repeat(600))),
      append.runMerged(redis, [key], merge('y'.repeat(600))),
    ])
    const long = ['x'.repeat(600), 'y'.repeat(600)]
    expect(await redis.lrange(key, 0, -1)).toEqual(['a+b', 'plain', 'c+d+e', 'f', 'g', ...long])
    // Every caller gets the reply of the call it was merged into: the list's length then.
    expect(replies).toEqual([1, 1, 2, 3, 3, 3, 4, 5, 6, 7])
    // A join that throws fails its callers alone.
    const bad = {
      group: 'g',
      item: 'z',
      join: () => {
        throw new Error('no join')
      },
      maxItems: 3,
      maxChars: 1_000,
    }
    const notArgs = { ...bad, join: () => 'x' as never }
    const settled = await Promise.allSettled([
      append.runMerged(redis, [key], bad),
      append.runMerged(redis, [key], notArgs),
      append.run(redis, [key], ['ok']),
    ])
    expect(settled[0]).toMatchObject({ status: 'rejected', reason: { message: 'no join' } })
    expect(settled[1]).toMatchObject({ status: 'rejected', reason: { message: /must return an array/ } })
    expect(settled[2]).toMatchObject({ status: 'fulfilled', value: 8 })
    // Calls with other keys never merge, whatever their group.
    const [one, two] = await Promise.all([
      append.runMerged(redis, [key], merge('k1')),
      append.runMerged(redis, [ks.key('merge', 'other')], merge('k2')),
    ])
    expect([one, two]).toEqual([9, 1])
    // A full batch leaves at once, but not on a mergeable call: the calls after it still join it.
    await redis.del(key)
    await Promise.all([
      ...Array.from({ length: MAX_BATCH_CALLS - 1 }, (_, i) => append.run(redis, [key], [`p${i}`])),
      append.runMerged(redis, [key], merge('m1')),
      append.runMerged(redis, [key], merge('m2')),
      append.runMerged(redis, [key], merge('m3')),
    ])
    expect((await redis.lrange(key, 0, -1)).slice(-1)).toEqual(['m1+m2+m3'])
  })

  it("runs a script's setup once per batch, in a scope of its own, and gives a batch's calls one server clock", async () => {
    const redis = target.client()
    const key = ks.key('scoped', 'k')
    const lone = await scopedA.run(redis, [key], [], { batch: false })
    expect(lone.slice(0, 2)).toEqual(['a', 1])
    const [server] = await redis.time()
    expect(Math.abs(Number(lone[2]) - Number(server))).toBeLessThanOrEqual(1)
    // One tick, one slot: a, b, a, b in one batch (a cluster batch is per node, here one slot).
    const replies = await Promise.all([
      scopedA.run(redis, [key]),
      scopedB.run(redis, [key]),
      scopedA.run(redis, [key]),
      scopedB.run(redis, [key]),
    ])
    expect(replies.map((r) => [r[0], r[1]])).toEqual([
      ['a', 1],
      ['b', 1],
      ['a', 2],
      ['b', 2],
    ])
    expect(new Set(replies.map((r) => `${r[2]}.${r[3]}`)).size).toBe(1)
  })

  it('gives a script the clock as numbers, exact integers as text and memoised numbers, alone and batched', async () => {
    const redis = target.client()
    const prelude = defineScript<string[]>({
      name: 'test.batch.prelude',
      keys: 1,
      flags: ['no-writes'],
      lua: `local t = rp_time()
return {t[1], t[2], rp_int(rp_now_us()), rp_int(rp_now_ms()), rp_int(ARGV[1] * 1), rp_int(-2 ^ 53 + 1), rp_int(2 ^ 63), tostring(rp_num(ARGV[2])), tostring(rp_num(ARGV[2]) == rp_num(ARGV[2])), tostring(rp_num('x'))}`,
    })
    const key = ks.key('prelude', 'k')
    const replies = [
      await prelude.run(redis, [key], ['9007199254740993', '0.5'], { batch: false }),
      ...(await Promise.all([1, 2, 3].map(() => prelude.run(redis, [key], ['1795925614544123', '0.5'])))),
    ]
    for (const [seconds, micros, us, ms, big, negative, huge, half, same, bad] of replies) {
      expect(us).toBe((BigInt(seconds!) * 1_000_000n + BigInt(micros!)).toString())
      expect(ms).toBe((BigInt(us!) / 1000n).toString())
      expect(negative).toBe('-9007199254740991')
      // Past what %d could hold on any build: printed as Redis prints a number, never wrapped.
      expect(huge).toBe('9.2233720368547758e+18')
      expect([half, same, bad]).toEqual(['0.5', 'true', 'nil'])
      expect(['9007199254740992', '1795925614544123']).toContain(big)
    }
    // One clock reading per batch.
    expect(new Set(replies.slice(1).map((r) => r[2])).size).toBe(1)
  })

  it('answers every call of a batch with its own reply, across many keys and slots', async () => {
    const redis = target.client()
    const calls = Array.from({ length: 300 }, (_, i) => incr.run(redis, [ks.key(`k${i % 40}`, 'n')], [i]))
    const replies = await Promise.all(calls)
    const totals = new Map<number, number>()
    replies.forEach((reply, i) => {
      const previous = totals.get(i % 40) ?? 0
      // Calls run in the order they were made, so each one's reply is the running total.
      expect(reply).toBe(previous + i)
      totals.set(i % 40, previous + i)
    })
  })

  it('gives a batched call the same reply as a lone call, whatever its shape', async () => {
    const redis = target.client()
    const kinds = ['nil', 'false', 'true', 'float', 'table', 'holes', 'status', 'plain']
    const lone: unknown[] = []
    for (const kind of kinds)
      lone.push(await shapes.run(redis, [ks.key(kind, 'x')], [kind, 'z'], { batch: false }))
    const batched = await Promise.all(
      kinds.map((kind) => shapes.run(redis, [ks.key(kind, 'x')], [kind, 'z'])),
    )
    expect(batched).toEqual(lone)
    expect(lone).toEqual([
      null,
      null,
      1,
      3,
      [1, 'a', [2, 'b'], 'z'],
      [1],
      'FINE',
      `${ks.key('plain', 'x')}|plain`,
    ])
    // Calls of different shapes in one batch (one or two args), one of them failing, another after it.
    const shaped = await Promise.allSettled(
      kinds.map((kind, i) => shapes.run(redis, [ks.key(kind, 'x')], i % 2 === 0 ? [kind] : [kind, 'z'])),
    )
    const mixedShapes = await Promise.allSettled([
      shapes.run(redis, [ks.key('a', 'x')], ['table']),
      shapes.run(redis, [ks.key('b', 'x')], ['error']),
      shapes.run(redis, [ks.key('c', 'x')], ['table', 'y']),
    ])
    expect(shaped.map((r) => (r.status === 'fulfilled' ? r.value : r.reason))).toEqual([
      null,
      null,
      1,
      3,
      [1, 'a', [2, 'b']],
      [1],
      'FINE',
      `${ks.key('plain', 'x')}|plain`,
    ])
    expect(mixedShapes.map((r) => r.status)).toEqual(['fulfilled', 'rejected', 'fulfilled'])
    expect((mixedShapes[2] as PromiseFulfilledResult<unknown>).value).toEqual([1, 'a', [2, 'b'], 'y'])
    expect((mixedShapes[1] as PromiseRejectedResult).reason.message).toMatch(/chosen/)
  })

  // Arguments reach the Command as one array, never spread into a function call, so no count of
  // them meets the engine's limit on call arguments (it made a 300,000-argument call fail to send).
  it('sends a call of 300,000 arguments alone, and the calls around it in their batch', async () => {
    const redis = target.client()
    const big = ks.key('big', 'x')
    const results = await Promise.all([
      incr.run(redis, [ks.key('big', 'a')], [1]),
      shapes.run(redis, [big], new Array(300_000).fill('plain')),
      incr.run(redis, [ks.key('big', 'b')], [1]),
    ])
    expect(results).toEqual([1, `${big}|plain`, 1])
  })

  it('fails one bad call alone: a wrong type, an error reply, a raised error, an undecodable reply', async () => {
    const redis = target.client()
    const wrong = ks.key('wrong', 'n')
    await redis.hset(wrong, 'a', '1')
    const results = await Promise.allSettled([
      incr.run(redis, [ks.key('good', 'n')], [1]),
      incr.run(redis, [wrong], [1]),
      shapes.run(redis, [ks.key('e', 'x')], ['error']),
      shapes.run(redis, [ks.key('r', 'x')], ['raise']),
      parsed.run(redis, [ks.key('p', 'x')], ['{"no":1}']),
      parsed.run(redis, [ks.key('p', 'x')], ['7']),
      incr.run(redis, [ks.key('good', 'n')], [1]),
    ])
    expect(results.map((r) => r.status)).toEqual([
      'fulfilled',
      'rejected',
      'rejected',
      'rejected',
      'rejected',
      'fulfilled',
      'fulfilled',
    ])
    expect((results[0] as PromiseFulfilledResult<number>).value).toBe(1)
    expect((results[6] as PromiseFulfilledResult<number>).value).toBe(2)
    expect((results[5] as PromiseFulfilledResult<number>).value).toBe(7)
    const reason = (i: number) => (results[i] as PromiseRejectedResult).reason as Error
    expect(reason(1)).toBeInstanceOf(ScriptError)
    expect(reason(1).message).toMatch(/test\.batch\.incr.*WRONGTYPE/)
    expect(reason(2).message).toMatch(/test\.batch\.shapes.*chosen/)
    expect(reason(3).message).toMatch(/raised/)
    expect(reason(4)).toBeInstanceOf(TypeError)
    // A lone call fails with the same error and message as the batched one.
    for (const [i, lone] of [
      [1, () => incr.run(redis, [wrong], [1], { batch: false })],
      [2, () => shapes.run(redis, [ks.key('e', 'x')], ['error'], { batch: false })],
      [3, () => shapes.run(redis, [ks.key('r', 'x')], ['raise'], { batch: false })],
    ] as const) {
      const error = await lone().then(
        () => null,
        (e: unknown) => e as Error,
      )
      expect(error).toBeInstanceOf(ScriptError)
      expect(error!.message).toBe(reason(i).message)
    }
    // A client that answers integers as strings (ioredis's stringNumbers) still fails the bad call.
    const strings = target.client({ stringNumbers: true })
    try {
      const mixed = await Promise.allSettled([
        incr.run(strings, [ks.key('s1', 'n')], [1]),
        incr.run(strings, [wrong], [1]),
        incr.run(strings, [ks.key('s2', 'n')], [1]),
      ])
      expect(mixed.map((r) => r.status)).toEqual(['fulfilled', 'rejected', 'fulfilled'])
      expect((mixed[1] as PromiseRejectedResult).reason).toBeInstanceOf(ScriptError)
    } finally {
      strings.disconnect()
    }
  })
})

describe('tick batching, counted on servers of its own', () => {
  it('sends a tick of calls in batches of MAX_BATCH_CALLS, one call per EVALSHA with batch: false, and bulk calls alone', async () => {
    const server = await startRedis({ ownServer: true })
    const redis = new Redis(server.url)
    try {
      await incr.run(redis, ['warm'], [1])
      const before = await scriptCalls([redis])
      await Promise.all(Array.from({ length: 200 }, (_, i) => incr.run(redis, [`k{${i}}`], [1])))
      const batched = await scriptCalls([redis])
      expect(batched.all - before.all).toBe(Math.ceil(200 / MAX_BATCH_CALLS))
      await Promise.all(
        Array.from({ length: 200 }, (_, i) => incr.run(redis, [`k{${i}}`], [1], { batch: false })),
      )
      const lone = await scriptCalls([redis])
      expect(lone.all - batched.all).toBe(200)
      // A batch of one is the script itself.
      await Promise.all(
        Array.from({ length: MAX_BATCH_CALLS + 1 }, (_, i) => incr.run(redis, [`k{${i}}`], [1])),
      )
      expect((await scriptCalls([redis])).all - lone.all).toBe(2)
      // Bulk calls (more than SOLO_ARGS arguments) go alone, with the same replies: nothing to share.
      const beforeBulk = await scriptCalls([redis])
      const bulk = Array.from({ length: SOLO_ARGS }, (_, i) => i)
      const bulkReplies = await Promise.all(
        Array.from({ length: 4 }, (_, i) => shapes.run(redis, [`b{${i}}`], ['table', ...bulk])),
      )
      expect((await scriptCalls([redis])).all - beforeBulk.all).toBe(4)
      expect(bulkReplies[3]).toEqual([1, 'a', [2, 'b'], '0'])
    } finally {
      redis.disconnect()
      await server.stop()
    }
  })

  it("sends a full batch at once, so Redis runs it while the client is still making the tick's other calls", async () => {
    const server = await startRedis({ ownServer: true })
    const redis = new Redis(server.url)
    try {
      // Loads the script and its batch wrapper, so every call below goes as EVALSHA.
      await incr.run(redis, ['w{0}'], [1])
      await Promise.all([incr.run(redis, ['w{1}'], [1]), incr.run(redis, ['w{2}'], [1])])
      const sent: string[] = []
      const send = redis.sendCommand.bind(redis)
      redis.sendCommand = ((command: { name: string }) => {
        sent.push(command.name)
        return send(command as never)
      }) as typeof redis.sendCommand
      const calls = Array.from({ length: MAX_BATCH_CALLS }, (_, i) => incr.run(redis, [`f{${i}}`], [1]))
      // Still in the tick that made the calls: the full batch has left, nothing else has.
      expect(sent).toEqual(['evalsha'])
      calls.push(incr.run(redis, ['f{last}'], [1]))
      expect(sent).toEqual(['evalsha'])
      expect(await Promise.all(calls)).toEqual(Array.from({ length: MAX_BATCH_CALLS + 1 }, () => 1))
      expect(sent).toEqual(['evalsha', 'evalsha'])
    } finally {
      redis.disconnect()
      await server.stop()
    }
  })

  it('sends a tick that mixes scripts as one call per batch, each call answered by its own script, in order', async () => {
    const server = await startRedis({ ownServer: true })
    const redis = new Redis(server.url)
    try {
      // Warm: a client's first call of a wrapper is EVAL; count the EVALSHA calls after it.
      // Two batches, each led by a set: the second batch's only set is the call it was cut at.
      const size = 2 * MAX_BATCH_CALLS
      const kind = (i: number) => (i % MAX_BATCH_CALLS === 0 ? 'set' : i < MAX_BATCH_CALLS ? 'incr' : 'tag')
      const tick = (round: number) =>
        Promise.all(
          Array.from({ length: size }, (_, i) =>
            kind(i) === 'incr'
              ? incr.run(redis, [`m{${i}}`], [1])
              : kind(i) === 'set'
                ? setTo.run(redis, [`s{${i}}`], [`${round}-${i}`])
                : tag.run(redis, [`m{${i}}`], [String(i)]),
          ),
        )
      await tick(0)
      const before = await scriptCalls([redis])
      const replies = await tick(1)
      expect((await scriptCalls([redis])).all - before.all).toBe(2)
      for (let i = 0; i < size; i++) {
        if (kind(i) === 'incr') expect(replies[i]).toBe(2)
        if (kind(i) === 'set') expect(replies[i]).toBe('OK')
        if (kind(i) === 'tag') expect(replies[i]).toBe(`m{${i}}|${i}`)
      }
      expect(await redis.get(`s{${MAX_BATCH_CALLS}}`)).toBe(`1-${MAX_BATCH_CALLS}`)
      // More scripts than one batch carries: still every call answered, in order.
      const many = Array.from({ length: 6 }, (_, j) =>
        defineScript<string>({ name: `test.batch.many${j}`, keys: 1, lua: `return '${j}:' .. ARGV[1]` }),
      )
      const answers = await Promise.all(
        Array.from({ length: 24 }, (_, i) => many[i % 6]!.run(redis, [`x{${i}}`], [String(i)])),
      )
      expect(answers).toEqual(Array.from({ length: 24 }, (_, i) => `${i % 6}:${i}`))
    } finally {
      redis.disconnect()
      await server.stop()
    }
  })

  it('mixes only scripts with the same flags: where Redis refuses writers, readers and allow-oom calls still run, in order', async () => {
    const append = (name: string) =>
      defineScript<number>({
        name: `test.batch.append.${name}`,
        keys: 1,
        flags: ['allow-oom'],
        lua: `return redis.call('APPEND', KEYS[1], ARGV[1])`,
      })
    const [first, second] = [append('a'), append('b')]
    // At maxmemory: 15 writers, then two allow-oom appends of two scripts, all in one tick.
    const full = await startRedis({
      ownServer: true,
      args: ['--maxmemory', '4mb', '--maxmemory-policy', 'noeviction'],
    })
    const redis = new Redis(full.url)
    try {
      await redis.set('log', '')
      await fillToMaxmemory(redis)
      const results = await Promise.allSettled([
        ...Array.from({ length: MAX_BATCH_CALLS - 1 }, (_, i) => incr.run(redis, [`more${i}`], [1])),
        first.run(redis, ['log'], ['A']),
        second.run(redis, ['log'], ['B']),
      ])
      for (const r of results.slice(0, -2))
        expect((r as PromiseRejectedResult).reason).toBeInstanceOf(RedisOutOfMemoryError)
      expect(results.slice(-2).map((r) => r.status)).toEqual(['fulfilled', 'fulfilled'])
      expect(await redis.get('log')).toBe('AB')
    } finally {
      redis.disconnect()
      await full.stop()
    }
    // A server that refuses every write (no replica to acknowledge it): a read-only script in the
    // same tick as a writer still answers, and the writer's error names its own script.
    const strict = await startRedis({ ownServer: true, args: ['--min-replicas-to-write', '1'] })
    const client = new Redis(strict.url)
    try {
      const [read, written] = await Promise.allSettled([
        shapes.run(client, ['r'], ['plain']),
        setTo.run(client, ['w'], ['x']),
      ])
      expect(read).toEqual({ status: 'fulfilled', value: 'r|plain' })
      // NOREPLICAS: the server is up but cannot take writes now, like an outage for that call.
      const reason = (written as PromiseRejectedResult).reason
      expect(reason).toBeInstanceOf(RedisUnavailableError)
      expect(String(reason.message)).toMatch(/test\.batch\.set.*NOREPLICAS/)
    } finally {
      client.disconnect()
      await strict.stop()
    }
  })

  it('gives the same answers on an auto-pipelining client, with its keyPrefix applied', async () => {
    const server = await startRedis({ ownServer: true })
    const plain = new Redis(server.url)
    try {
      for (const enableAutoPipelining of [true, false]) {
        const redis = new Redis(server.url, { enableAutoPipelining, keyPrefix: `kp${enableAutoPipelining}:` })
        const replies = await Promise.all(
          Array.from({ length: 100 }, (_, i) => incr.run(redis, [`{k${i % 10}}`], [i])),
        )
        expect(replies.slice(90)).toEqual([450, 460, 470, 480, 490, 500, 510, 520, 530, 540])
        expect(await plain.get(`kp${enableAutoPipelining}:{k9}`)).toBe('540')
        redis.disconnect()
      }
    } finally {
      plain.disconnect()
      await server.stop()
    }
  })

  it('answers every call within timeoutMs while Redis is paused, and again once it resumes', async () => {
    const server = await startRedis({ ownServer: true })
    const redis = new Redis(server.url, { maxRetriesPerRequest: 1 }).on('error', () => {})
    const unhandled: unknown[] = []
    const onUnhandled = (reason: unknown) => unhandled.push(reason)
    process.on('unhandledRejection', onUnhandled)
    try {
      const guard = new RedisGuard(redis, 200)
      await guard.run('warm', () => incr.run(redis, ['p{0}'], [1]))
      await server.pause()
      const started = performance.now()
      const results = await Promise.allSettled(
        Array.from({ length: 500 }, (_, i) =>
          guard.run('incr', () => incr.run(redis, [`p{${i % 50}}`], [1])),
        ),
      )
      const elapsed = performance.now() - started
      expect(results.every((r) => r.status === 'rejected' && r.reason instanceof TimeoutError)).toBe(true)
      expect(elapsed).toBeLessThan(1_000)
      await server.resume()
      expect(await guard.run('incr', () => incr.run(redis, ['p{0}'], [1]))).toBeGreaterThan(1)
      await new Promise((resolve) => setTimeout(resolve, 50))
      expect(unhandled).toEqual([])
    } finally {
      process.off('unhandledRejection', onUnhandled)
      redis.disconnect()
      await server.stop()
    }
  })
})

// Reads its key with pcall, so an error reply is an answer to it, not a failure.
const peek = defineScript<string | null>({
  name: 'test.batch.peek',
  keys: 1,
  flags: ['no-writes'],
  lua: `local v = redis.pcall('GET', KEYS[1])
if type(v) == 'table' then return 'ERROR' end
return v`,
})

const both = defineScript<number>({
  name: 'test.batch.both',
  keys: 2,
  lua: `redis.call('INCRBY', KEYS[1], ARGV[1])
return redis.call('INCRBY', KEYS[2], ARGV[1])`,
})

describe('tick batching on a cluster', () => {
  it('sends one batch per master, and resends per slot when a slot moved under a stale map', async () => {
    const cluster = await startCluster({ masters: 3, replicas: 0 })
    const redis = new Cluster([...cluster.nodes])
    try {
      const nodes = await masters(redis)
      const ks = keyspace(uniquePrefix('moved'))
      const keys = Array.from({ length: 90 }, (_, i) => ks.key(`t${i}`, 'n'))
      await Promise.all(keys.map((key) => incr.run(redis, [key], [1], { batch: false })))
      const before = await scriptCalls(nodes)
      expect(await Promise.all(keys.map((key) => incr.run(redis, [key], [1])))).toEqual(keys.map(() => 2))
      // Keys of different slots on one node share a call: one EVALSHA per master and MAX_BATCH_CALLS.
      const perNode = new Map<string, number>()
      for (const key of keys) {
        const node = redis.slots[calculateSlot(key)]![0]!
        perNode.set(node, (perNode.get(node) ?? 0) + 1)
      }
      const expected = [...perNode.values()].reduce((sum, n) => sum + Math.ceil(n / MAX_BATCH_CALLS), 0)
      expect(perNode.size).toBe(3)
      expect((await scriptCalls(nodes)).all - before.all).toBe(expected)
      // Two scripts with the same flags share those cross-slot batches: as many calls, each call
      // answered by its own script (an increment by 0 leaves the counters as they are).
      const beforeMixed = await scriptCalls(nodes)
      const answers = await Promise.all(
        keys.map((key, i) => (i % 2 ? tag.run(redis, [key], ['x']) : incr.run(redis, [key], [0]))),
      )
      expect(answers).toEqual(keys.map((key, i) => (i % 2 ? `${key}|x` : 2)))
      expect((await scriptCalls(nodes)).all - beforeMixed.all).toBe(expected)

      // Move one key's slot to another master behind the client's back: its slot map is stale, so
      // the next batch for the old owner carries a key that node no longer serves.
      const moved = keys[0]!
      const slot = calculateSlot(moved)
      const owner = nodes.find((n) => n.options.port === Number(redis.slots[slot]![0]!.split(':')[1]))!
      const other = nodes.find((n) => n !== owner)!
      const otherId = (await other.cluster('MYID')) as string
      const inSlot = keys.filter((key) => calculateSlot(key) === slot)
      await owner.del(...inSlot)
      for (const node of [other, owner, ...nodes.filter((n) => n !== owner && n !== other)])
        await node.cluster('SETSLOT', slot, 'NODE', otherId)
      // A script that reads with redis.pcall would take "not served here" for an answer; each call
      // of a cross-slot batch is checked before it runs, and resent to the slot's new owner.
      await other.set(moved, 41)
      const read = await Promise.all(keys.map((key) => peek.run(redis, [key])))
      expect(read).toEqual(keys.map((key) => (key === moved ? '41' : inSlot.includes(key) ? null : '2')))
      const replies = await Promise.all(keys.map((key) => incr.run(redis, [key], [1])))
      expect(replies).toEqual(keys.map((key) => (key === moved ? 42 : inSlot.includes(key) ? 1 : 3)))

      // A call whose own keys span slots fails as it would alone (CROSSSLOT), having written nothing,
      // even when its slots share a node with the batch.
      const a = keys[1]!
      const node = redis.slots[calculateSlot(a)]![0]
      const b = keys.find(
        (k) => k !== a && redis.slots[calculateSlot(k)]![0] === node && calculateSlot(k) !== calculateSlot(a),
      )!
      const untouched = await redis.get(a)
      const mixed = await Promise.allSettled([
        incr.run(redis, [keys[2]!], [1]),
        both.run(redis, [a, b], [1]),
        incr.run(redis, [keys[3]!], [1]),
      ])
      expect(mixed.map((r) => r.status)).toEqual(['fulfilled', 'rejected', 'fulfilled'])
      expect(String((mixed[1] as PromiseRejectedResult).reason)).toMatch(/CROSSSLOT/)
      expect(await redis.get(a)).toBe(untouched)
    } finally {
      redis.disconnect()
      await cluster.stop()
    }
  }, 60_000)
})
