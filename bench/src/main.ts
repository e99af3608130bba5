/**
 * Side-by-side benchmarks: every contender runs against the same redis-server, interleaved
 * round by round (A, B, A, B…) so drift on the machine cancels out. `--quick` runs tiny sizes and
 * only checks that every workload completes and yields its figures.
 */
import { execFileSync } from 'node:child_process'
import { writeFileSync } from 'node:fs'
import { cpus } from 'node:os'
import { startBinaryServer } from '@rp/testing'
import { Redis } from 'ioredis'
import { countCommands, type Figures, run, type Sample, summarize } from './measure.js'
import { KEYS, MINIMAL_LUA, rateLimitContenders } from './ratelimit.js'

const quick = process.argv.includes('--quick')
const OPS = quick ? 2_000 : 60_000
const ROUNDS = quick ? 2 : 5
const CONCURRENCY = 64

interface Row extends Figures {
  workload: string
  name: string
  library: string
  settings: string
  ratioToBest?: number
}

const server = await startBinaryServer()
const admin = new Redis(server.url)
const rows: Row[] = []
const memoryRows: Array<{ name: string; bytesPerKey: number }> = []
const baselines: Array<{ name: string; requestsPerSec: number }> = []

try {
  const contenders = rateLimitContenders()
  const clients = contenders.map(() => new Redis(server.url))
  const counters = clients.map((c) => countCommands(c))
  const ops = await Promise.all(contenders.map((c, i) => c.setup(clients[i]!, `bench${i}`)))
  const samples: Sample[][] = contenders.map(() => [])
  // Warm-up loads scripts and connections so round 1 is not penalised.
  for (let i = 0; i < contenders.length; i++) await run(ops[i]!, 200, 8, { client: counters[i]!, admin })
  for (let round = 0; round < ROUNDS; round++) {
    for (let i = 0; i < contenders.length; i++) {
      samples[i]!.push(
        await run((n) => ops[i]!(n + round * OPS), Math.floor(OPS / ROUNDS), CONCURRENCY, {
          client: counters[i]!,
          admin,
        }),
      )
    }
  }
  contenders.forEach((c, i) => {
    rows.push({
      workload: `Rate-limit check, ${KEYS} hot keys, concurrency ${CONCURRENCY}`,
      name: c.name,
      library: c.library,
      settings: c.settings,
      ...summarize(samples[i]!),
    })
  })
  for (const c of clients) c.disconnect()

  // Memory per key: one key filled to its limit.
  for (const [i, c] of contenders.entries()) {
    if (!c.fill) continue
    const client = new Redis(server.url)
    const keys = await c.fill(client, `mem${i}`, 100)
    let bytes = 0
    for (const key of keys) bytes += Number((await admin.memory('USAGE', key, 'SAMPLES', '0')) ?? 0)
    memoryRows.push({ name: c.name, bytesPerKey: bytes })
    client.disconnect()
  }

  // The server's own ceiling for the same minimal script, from redis-benchmark.
  const sha = (await admin.script('LOAD', MINIMAL_LUA)) as string
  for (const pipeline of [1, 16]) {
    const out = execFileSync(
      'redis-benchmark',
      [
        '-p',
        String(server.port),
        '-n',
        String(quick ? 5_000 : 200_000),
        '-c',
        String(CONCURRENCY),
        '-r',
        String(KEYS),
        '-P',
        String(pipeline),
        '-q',
        '--csv',
        'EVALSHA',
        sha,
        '1',
        'rb:__rand_int__',
        '60000',
      ],
      { encoding: 'utf8' },
    )
    const line = out.trim().split('\n').pop()!
    const rps = Number(line.split(',')[1]?.replaceAll('"', ''))
    baselines.push({
      name: `redis-benchmark EVALSHA (INCR + PEXPIRE), -c ${CONCURRENCY}, -P ${pipeline}`,
      requestsPerSec: rps,
    })
  }
} finally {
  admin.disconnect()
  await server.stop()
}

const best = Math.max(
  ...rows.filter((r) => r.library !== '@rp/ratelimit' && r.library !== 'baseline').map((r) => r.opsPerSec),
)
for (const r of rows) r.ratioToBest = r.opsPerSec / best

const redisVersion = execFileSync('redis-server', ['--version'], { encoding: 'utf8' }).match(/v=(\S+)/)?.[1]
const machine = {
  cpu: cpus()[0]?.model,
  cores: cpus().length,
  node: process.version,
  redis: redisVersion,
  date: new Date().toISOString(),
  quick,
  opsPerContender: OPS,
  rounds: ROUNDS,
}

const problems = [
  ...rows
    .filter(
      (r) =>
        !Number.isFinite(r.opsPerSec) || !Number.isFinite(r.p99Ms) || !Number.isFinite(r.serverCommandsPerOp),
    )
    .map((r) => `${r.name}: missing figures`),
  ...memoryRows.filter((m) => !(m.bytesPerKey > 0)).map((m) => `${m.name}: no memory figure`),
  ...baselines.filter((b) => !(b.requestsPerSec > 0)).map((b) => `${b.name}: no figure`),
]

const fmt = (n: number, digits = 0) =>
  n.toLocaleString('en-US', { maximumFractionDigits: digits, minimumFractionDigits: digits })
const md = [
  '# Benchmark results',
  '',
  `Machine: ${machine.cpu}, ${machine.cores} cores · Node ${machine.node} · Redis ${machine.redis} · ${machine.date}${quick ? ' · **quick run: sizes too small to compare**' : ''}`,
  '',
  'Every contender runs against one redis-server (persistence off) started by the harness, interleaved round by round.',
  '"Client cmds/op" counts commands the client sent; "server cmds/op" is the INFO commandstats delta, which includes commands run inside scripts.',
  '"vs best peer" is ops/s relative to the fastest peer library (not counting the raw baseline).',
  '',
  '## Rate limiting',
  '',
  `### ${rows[0]?.workload ?? ''}`,
  '',
  '| Library | ops/s | p50 ms | p99 ms | client cmds/op | server cmds/op | vs best peer |',
  '| --- | ---: | ---: | ---: | ---: | ---: | ---: |',
  ...rows.map(
    (r) =>
      `| ${r.name} | ${fmt(r.opsPerSec)} | ${fmt(r.p50Ms, 2)} | ${fmt(r.p99Ms, 2)} | ${fmt(r.clientCommandsPerOp, 2)} | ${fmt(r.serverCommandsPerOp, 2)} | ${fmt(r.ratioToBest ?? 0, 2)}× |`,
  ),
  '',
  ...baselines.map((b) => `- Server limit, ${b.name}: ${fmt(b.requestsPerSec)} requests/s`),
  '',
  '### Memory per key (one key at its limit of 100 hits, MEMORY USAGE)',
  '',
  '| Library | bytes per key |',
  '| --- | ---: |',
  ...memoryRows.map((m) => `| ${m.name} | ${fmt(m.bytesPerKey)} |`),
  '',
  '### Settings',
  '',
  ...rows.map((r) => `- ${r.name}: ${r.settings}`),
  '',
].join('\n')

const resultsDir = new URL('../results/', import.meta.url)
writeFileSync(
  new URL(quick ? 'quick.json' : 'latest.json', resultsDir),
  `${JSON.stringify({ machine, rows, memory: memoryRows, baselines }, null, 2)}\n`,
)
if (!quick) writeFileSync(new URL('../RESULTS.md', import.meta.url), md)
console.log(md)
if (problems.length > 0) {
  console.error(`bench: incomplete figures:\n${problems.join('\n')}`)
  process.exit(1)
}
console.log(`bench: ${rows.length + memoryRows.length + baselines.length} figures complete`)
