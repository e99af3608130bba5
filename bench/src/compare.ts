import { Redis } from 'ioredis'
import { countCommands, type Figures, run, type Sample, summarize } from './measure.js'

/** The ioredis options every ioredis-based contender gets: the same client for every library. */
export const CLIENT_OPTIONS = { enableAutoPipelining: false } as const

export interface Context {
  url: string
  admin: Redis
  quick: boolean
  ops: number
  rounds: number
  concurrency: number
}

export interface Contender {
  /** Row label. */
  name: string
  library: string
  /** The settings used, stated in RESULTS.md. */
  settings: string
  /** Builds the operation on a fresh ioredis client whose commands are counted. */
  setup(
    redis: Redis,
    prefix: string,
    ctx: Context,
  ): Promise<{ op: (i: number) => Promise<unknown>; close?: () => Promise<void> }>
  /** The library brings its own connection, so its client commands cannot be counted. */
  ownConnection?: boolean
}

export interface Row extends Figures {
  workload: string
  name: string
  library: string
  settings: string
  ratioToBestPeer?: number
}

/** Runs every contender on the same server, interleaved round by round, and summarizes each. */
export async function compare(ctx: Context, workload: string, contenders: Contender[]): Promise<Row[]> {
  const clients = contenders.map(() => new Redis(ctx.url, CLIENT_OPTIONS))
  const counters = clients.map((c) => countCommands(c))
  const built: Array<Awaited<ReturnType<Contender['setup']>>> = []
  for (const [i, c] of contenders.entries())
    built.push(await c.setup(clients[i]!, `b${i}${Date.now().toString(36)}`, ctx))
  const samples: Sample[][] = contenders.map(() => [])
  // Warm-up long enough for the JIT to settle on every contender's hot path.
  for (let i = 0; i < contenders.length; i++)
    await run(built[i]!.op, ctx.quick ? 200 : 2_000, 8, { client: counters[i]!, admin: ctx.admin })
  const perRound = Math.floor(ctx.ops / ctx.rounds)
  for (let round = 0; round < ctx.rounds; round++) {
    // Each round starts with a different contender, so no library always runs first (or right
    // after the heaviest one).
    for (let j = 0; j < contenders.length; j++) {
      const i = (j + round) % contenders.length
      samples[i]!.push(
        await run((n) => built[i]!.op(n + round * perRound), perRound, ctx.concurrency, {
          client: counters[i]!,
          admin: ctx.admin,
        }),
      )
    }
  }
  for (const b of built) await b.close?.()
  for (const c of clients) c.disconnect()
  const rows: Row[] = contenders.map((c, i) => {
    const figures = summarize(samples[i]!)
    return {
      workload,
      name: c.name,
      library: c.library,
      settings: c.settings,
      ...figures,
      ...(c.ownConnection ? { clientCommandsPerOp: Number.NaN } : {}),
    }
  })
  const peers = rows.filter((r) => !r.library.startsWith('@rp/') && r.library !== 'baseline')
  const best = Math.max(...peers.map((r) => r.opsPerSec))
  for (const r of rows) r.ratioToBestPeer = r.opsPerSec / best
  return rows
}

const fmt = (n: number, digits = 0) =>
  Number.isFinite(n)
    ? n.toLocaleString('en-US', { maximumFractionDigits: digits, minimumFractionDigits: digits })
    : 'n/a'

export { fmt }

export function table(rows: Row[]): string[] {
  return [
    `### ${rows[0]?.workload ?? ''}`,
    '',
    '| Library | ops/s | p50 ms | p99 ms | client cmds/op | server cmds/op | vs best peer |',
    '| --- | ---: | ---: | ---: | ---: | ---: | ---: |',
    ...rows.map(
      (r) =>
        `| ${r.name} | ${fmt(r.opsPerSec)} | ${fmt(r.p50Ms, 2)} | ${fmt(r.p99Ms, 2)} | ${fmt(r.clientCommandsPerOp, 2)} | ${fmt(r.serverCommandsPerOp, 2)} | ${fmt(r.ratioToBestPeer ?? Number.NaN, 2)}× |`,
    ),
    '',
    verdict(rows),
    '',
  ]
}

/** One sentence per table: does @rp win or lose on throughput against the best peer? */
export function verdict(rows: Row[]): string {
  const ours = rows.filter((r) => r.library.startsWith('@rp/')).sort((a, b) => b.opsPerSec - a.opsPerSec)[0]
  const peer = rows
    .filter((r) => !r.library.startsWith('@rp/') && r.library !== 'baseline')
    .sort((a, b) => b.opsPerSec - a.opsPerSec)[0]
  if (!ours || !peer) return ''
  const ratio = ours.opsPerSec / peer.opsPerSec
  // Within 3 % either way is inside what one round moves on a shared VM: call it level.
  const outcome = ratio >= 1.03 ? 'wins' : ratio > 0.97 ? 'is level on' : 'loses'
  return `**@rp ${outcome} this workload**: ${ours.name} runs at ${fmt(ratio, 2)}× ${peer.name}.`
}
