/**
 * Side-by-side benchmarks: every contender runs against the same redis-server (persistence off),
 * interleaved round by round (A, B, A, B…) so drift on the machine cancels out. `--quick` runs tiny
 * sizes and only checks that every workload completes and yields its figures.
 */
import { execFileSync } from 'node:child_process'
import { writeFileSync } from 'node:fs'
import { cpus } from 'node:os'
import { startBinaryServer } from '@rp/testing'
import { Redis } from 'ioredis'
import { cacheStampede, stampedeTable } from './cache.js'
import { clusterTables } from './cluster.js'
import { type Contender, type Context, compare, fmt, type Row, type Suite, table } from './compare.js'
import { bulkLoad, bulkTable } from './leaderboard.js'
import { handoffTable, lockHandoff } from './lock.js'
import { pubsubMemory } from './pubsub.js'
import { ADMITTED, DENIED, KEYS, MINIMAL_LUA, rateLimitMemory } from './ratelimit.js'
import { SESSIONS, sessionMemory } from './session.js'

const quick = process.argv.includes('--quick')
// `--only session` runs one section, to iterate on it; RESULTS.md is written only by a full run.
const onlyAt = process.argv.indexOf('--only')
const only = onlyAt > 0 ? process.argv[onlyAt + 1] : undefined
const wants = (section: string) => only === undefined || only === section
const server = await startBinaryServer()
const admin = new Redis(server.url)
const ctx: Context = {
  url: server.url,
  admin,
  quick,
  ops: quick ? 2_000 : 200_000,
  rounds: quick ? 2 : 8,
  concurrency: 64,
}
const problems: string[] = []
const md: string[] = []
const json: Record<string, unknown> = {}

/** The server's own ceiling for a command, from redis-benchmark (no pipelining, then 16 deep). */
function redisBenchmark(label: string, args: string[]): string[] {
  const lines: string[] = []
  for (const pipeline of [1, 16]) {
    const out = execFileSync(
      'redis-benchmark',
      [
        '-p',
        String(server.port),
        '-n',
        String(quick ? 5_000 : 100_000),
        '-c',
        '64',
        '-r',
        String(KEYS),
        '-P',
        String(pipeline),
        '-q',
        '--csv',
        ...args,
      ],
      { encoding: 'utf8' },
    )
    const rps = Number(out.trim().split('\n').pop()?.split(',')[1]?.replaceAll('"', ''))
    if (!(rps > 0)) problems.push(`redis-benchmark ${label}: no figure`)
    lines.push(`- Server limit, redis-benchmark ${label}, -c 64, -P ${pipeline}: ${fmt(rps)} requests/s`)
  }
  return [...lines, '']
}

/**
 * The same workload with one caller: batching cannot help there, so this shows what it costs (a
 * call waits for the end of its tick before it leaves).
 */
async function alone(
  workload: string,
  suite: Suite,
  only?: (contender: Contender) => boolean,
): Promise<string[]> {
  const one = { ...ctx, concurrency: 1, ops: quick ? 400 : 20_000, rounds: quick ? 2 : 4 }
  const rows = check(await compare(one, `${workload}, concurrency 1`, suite, only ? { only } : {}))
  return table(rows)
}

function check(rows: Row[]): Row[] {
  for (const r of rows)
    if (!Number.isFinite(r.opsPerSec) || !Number.isFinite(r.p99Ms) || !Number.isFinite(r.serverCommandsPerOp))
      problems.push(`${r.workload} / ${r.name}: missing figures`)
  return rows
}

try {
  if (wants('ratelimit')) {
    md.push('## Rate limiting', '')
    const rl = check(
      await compare(
        ctx,
        `Rate-limit check, ${KEYS} hot keys, every check admitted, concurrency 64`,
        { module: 'ratelimit.ts', list: 'rateLimitContenders', args: [ADMITTED] },
        { pipelined: true },
      ),
    )
    const sha = (await admin.script('LOAD', MINIMAL_LUA)) as string
    md.push(
      ...table(rl),
      ...(await alone(
        'Rate-limit check, admitted',
        { module: 'ratelimit.ts', list: 'rateLimitContenders', args: [ADMITTED] },
        (c) => !/sliding|fixed-window|token/.test(c.name),
      )),
      ...redisBenchmark('EVALSHA (INCR + PEXPIRE)', ['EVALSHA', sha, '1', 'rb:__rand_int__', '60000']),
    )
    const denied = check(
      await compare(
        ctx,
        `Rate-limit check, ${KEYS} keys spent to their limit of ${DENIED.limit}, every check denied, concurrency 64`,
        { module: 'ratelimit.ts', list: 'rateLimitContenders', args: [DENIED] },
      ),
    )
    md.push(
      ...table(denied),
      "Where a library can remember denied keys in process (@rp `blockCache`, rate-limiter-flexible `inMemoryBlockOnConsumed`, @upstash/ratelimit's ephemeral cache, on by default), a denial costs no round trip; the rows say which do.",
      '',
    )
    const memClient = new Redis(server.url)
    const memory = await rateLimitMemory(memClient, admin)
    memClient.disconnect()
    for (const m of memory) if (!(m.bytesPerKey > 0)) problems.push(`memory ${m.name}: no figure`)
    md.push(
      '### Rate-limit memory per key (one key at its limit of 100, MEMORY USAGE)',
      '',
      '| Library | bytes per key |',
      '| --- | ---: |',
    )
    md.push(...memory.map((m) => `| ${m.name} | ${fmt(m.bytesPerKey)} |`), '')
    Object.assign(json, { rateLimit: rl, rateLimitDenied: denied, rateLimitMemory: memory })
  }
  if (wants('lock')) {
    md.push('## Locks', '')
    const lk = check(
      await compare(
        ctx,
        'Lock acquire + release, uncontended, distinct resources, concurrency 64',
        { module: 'lock.ts', list: 'lockContenders' },
        { pipelined: true },
      ),
    )
    md.push(
      ...table(lk),
      ...(await alone('Lock acquire + release', { module: 'lock.ts', list: 'lockContenders' })),
      ...redisBenchmark('SET NX PX', ['SET', 'lk:__rand_int__', 'v', 'PX', '10000', 'NX']),
    )
    const handoff = await lockHandoff(ctx)
    for (const h of handoff) if (!Number.isFinite(h.p50Ms)) problems.push(`handoff ${h.name}: no figure`)
    md.push(...handoffTable(handoff))
    Object.assign(json, { lock: lk, lockHandoff: handoff })
  }
  if (wants('cache')) {
    md.push('## Cache', '')
    const hit = check(
      await compare(
        ctx,
        'Cache hit from Redis, concurrency 64',
        { module: 'cache.ts', list: 'cacheHitContenders' },
        { pipelined: true },
      ),
    )
    md.push(
      ...table(hit),
      ...(await alone('Cache hit from Redis', { module: 'cache.ts', list: 'cacheHitContenders' })),
      ...redisBenchmark('GET', ['GET', 'key:__rand_int__']),
    )
    const l1 = check(
      await compare(ctx, 'Cache hit with the in-process tier, concurrency 64', {
        module: 'cache.ts',
        list: 'cacheL1Contenders',
      }),
    )
    md.push(...table(l1))
    const stampede = await cacheStampede(ctx)
    for (const s of stampede)
      if (!(s.factoryCalls >= 1) || !(s.callers > 0)) problems.push(`stampede ${s.name}: no figure`)
    md.push(...stampedeTable(stampede, quick ? 50 : 250))

    Object.assign(json, { cacheHit: hit, cacheL1: l1, cacheStampede: stampede })
  }
  if (wants('session')) {
    md.push('## Sessions', '')
    const flow = check(
      await compare(
        ctx,
        `Session request flow (express-session: get, then touch, or set 1 request in 4), ${SESSIONS} sessions of 1 KiB, concurrency 64`,
        { module: 'session.ts', list: 'sessionFlowContenders' },
        { pipelined: true },
      ),
    )
    md.push(...table(flow))
    const get = check(
      await compare(ctx, `Session get, ${SESSIONS} sessions of 1 KiB, concurrency 64`, {
        module: 'session.ts',
        list: 'sessionGetContenders',
      }),
    )
    md.push(...table(get))
    const memClient = new Redis(server.url)
    const sessionMem = await sessionMemory(memClient, ctx)
    memClient.disconnect()
    for (const m of sessionMem) if (!(m.bytes > 0)) problems.push(`session memory ${m.name}: no figure`)
    md.push(
      `### Memory per session (a ${sessionMem[0]?.jsonBytes ?? 0}-byte session as JSON, MEMORY USAGE of every key it writes)`,
      '',
      '| Library | bytes per session |',
      '| --- | ---: |',
      ...sessionMem.map((m) => `| ${m.name} | ${fmt(m.bytes)} |`),
      '',
    )
    Object.assign(json, { sessionFlow: flow, sessionGet: get, sessionMemory: sessionMem })
  }
  if (wants('pubsub')) {
    md.push('## Pub/sub', '')
    const broadcast = check(
      await compare(
        ctx,
        'Broadcast: publish until all 4 subscribers have it, concurrency 64',
        { module: 'pubsub.ts', list: 'broadcastContenders' },
        { pipelined: true },
      ),
    )
    md.push(...table(broadcast))
    const durable = check(
      await compare(ctx, 'Durable work: publish until one of 4 consumers has handled it, concurrency 64', {
        module: 'pubsub.ts',
        list: 'durableContenders',
      }),
    )
    md.push(...table(durable))
    const memClient = new Redis(server.url)
    const pubsubMem = await pubsubMemory(memClient, admin)
    memClient.disconnect()
    for (const m of pubsubMem) if (!(m.bytesPer1000 > 0)) problems.push(`pubsub memory ${m.name}: no figure`)
    md.push(
      '### Memory per 1,000 retained messages (the broadcast message, MEMORY USAGE of every key written)',
      '',
      '| Library | bytes per 1,000 messages |',
      '| --- | ---: |',
      ...pubsubMem.map((m) => `| ${m.name} | ${fmt(m.bytesPer1000)} |`),
      '',
    )
    Object.assign(json, { pubsubBroadcast: broadcast, pubsubDurable: durable, pubsubMemory: pubsubMem })
  }
  if (wants('leaderboard')) {
    md.push('## Leaderboards', '')
    const submit = check(
      await compare(
        ctx,
        'Leaderboard submit + rank, 10,000 members, concurrency 64',
        { module: 'leaderboard.ts', list: 'submitContenders' },
        {
          pipelined: true,
        },
      ),
    )
    md.push(...table(submit))
    const members = quick ? 10_000 : 1_000_000
    const boardClient = new Redis(server.url)
    const loaded = await bulkLoad(ctx, boardClient, members)
    for (const r of loaded.rows) if (!(r.membersPerSec > 0)) problems.push(`bulk load ${r.name}: no figure`)
    md.push(
      `### Bulk load of ${fmt(members)} members (8 batches of 1,000 in flight), and memory per member`,
      '',
      ...bulkTable(loaded.rows),
    )
    const reads: Record<string, Row[]> = {}
    for (const op of ['top', 'around', 'percentile'] as const) {
      const label = { top: 'top(100)', around: 'around(member, 10)', percentile: 'percentile(member)' }[op]
      reads[op] = check(
        await compare(ctx, `Leaderboard ${label} on a ${fmt(members)}-member board, concurrency 64`, {
          module: 'leaderboard.ts',
          list: 'readContenders',
          args: [members, op],
        }),
      )
      md.push(...table(reads[op]!))
    }
    boardClient.disconnect()
    Object.assign(json, { leaderboardSubmit: submit, leaderboardBulk: loaded.rows, leaderboardReads: reads })
  }
  if (wants('cluster')) md.push('## Cluster', '', ...(await clusterTables({ quick })))
} finally {
  admin.disconnect()
  await server.stop()
}

const redisVersion = execFileSync('redis-server', ['--version'], { encoding: 'utf8' }).match(/v=(\S+)/)?.[1]
const machine = {
  cpu: cpus()[0]?.model,
  cores: cpus().length,
  node: process.version,
  redis: redisVersion,
  date: new Date().toISOString(),
  quick,
  ops: ctx.ops,
  rounds: ctx.rounds,
}
const all = [
  '# Benchmark results',
  '',
  `Machine: ${machine.cpu}, ${machine.cores} cores · Node ${machine.node} · Redis ${machine.redis} · ${machine.date}${quick ? ' · **quick run: sizes too small to compare**' : ''}`,
  '',
  `Every contender runs in a Node process of its own (its library, client and garbage alone in their heap and event loop) against one redis-server (persistence off) started by the harness, ${ctx.rounds} interleaved rounds (each starting with a different contender) after a warm-up, ${fmt(ctx.ops)} operations each, 64 in flight (ops/s is the median round; latencies pool every round); every ioredis-based library gets the same ioredis client options. @rp packages run from their built dist/, as npm users get them.`,
  '"client cmds/op" counts commands the client sent (n/a where the library brings its own connection); "server cmds/op" is the INFO commandstats delta, which also counts commands run inside scripts; "Redis CPU µs/op" is the delta of used_cpu_user + used_cpu_sys (INFO cpu) per operation: what a shared Redis pays for each call, parsing and syscalls included.',
  'Where a table has an "ops/s, auto-pipelining" column, every contender also ran on clients with `enableAutoPipelining: true`, in the same interleaved rounds; "vs best peer" and the verdict take each contender\'s better column. @rp rows marked `batch: false` send every call alone, so the gain from tick batching stays visible. A row named "the floor of batching" sends @rp\'s own batch wrapper, with @rp\'s own KEYS and ARGV, tick-batched 16 calls to an EVALSHA from a plain ioredis client that hands back the raw replies: what the batched script costs with no client path around it, the ceiling of this design. The "concurrency 1" tables show what batching costs a lone caller, where it cannot help.',
  '"vs best peer" is ops/s relative to the fastest peer library in the table (baselines excluded). Each library runs with its documented defaults plus the settings listed.',
  '',
  ...md,
  '## Settings',
  '',
  ...[
    ...((json.rateLimit as Row[]) ?? []),
    ...((json.rateLimitDenied as Row[]) ?? []),
    ...((json.lock as Row[]) ?? []),
    ...((json.cacheHit as Row[]) ?? []),
    ...((json.cacheL1 as Row[]) ?? []),
    ...((json.sessionFlow as Row[]) ?? []),
    ...((json.leaderboardSubmit as Row[]) ?? []),
    ...((json.pubsubBroadcast as Row[]) ?? []),
    ...((json.pubsubDurable as Row[]) ?? []),
  ].map((r) => `- ${r.name}: ${r.settings}`),
  '',
].join('\n')

const results = new URL('../results/', import.meta.url)
writeFileSync(
  new URL(quick ? 'quick.json' : only ? `${only}.json` : 'latest.json', results),
  `${JSON.stringify({ machine, ...json }, null, 2)}\n`,
)
if (!quick && only === undefined) writeFileSync(new URL('../RESULTS.md', import.meta.url), all)
console.log(all)
if (problems.length > 0) {
  console.error(`bench: incomplete figures:\n${problems.join('\n')}`)
  process.exit(1)
}
console.log('bench: every workload completed with its figures')
// Exit explicitly: a peer library that keeps a handle open (BullMQ's and graphql-redis-subscriptions'
// reconnecting clients after the server stopped) must not keep the run, and CI, waiting for ever.
process.exit(0)
