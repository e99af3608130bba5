import { Redis } from 'ioredis'
import { countCommands, type Figures, run, type Sample, summarize } from './measure.js'

/** The ioredis options every ioredis-based contender gets: the same client for every library. */
export const CLIENT_OPTIONS = { enableAutoPipelining: false } as const
/** The second column: the same, with ioredis's auto-pipelining on, as many users run it. */
export const PIPELINED_OPTIONS = { enableAutoPipelining: true } as const

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
  /** A baseline that is the floor of batching for the @rp row of this name (issue 14). */
  floorOf?: string
}

export interface Row extends Figures {
  workload: string
  name: string
  library: string
  settings: string
  /** ops/s with enableAutoPipelining on every ioredis client, when the table has that column. */
  pipelinedOpsPerSec?: number
  ratioToBestPeer?: number
  floorOf?: string
}

interface Lane {
  contender: Contender
  counter: () => number
  op: (i: number) => Promise<unknown>
  close?: () => Promise<void>
  samples: Sample[]
}

async function lanes(ctx: Context, contenders: Contender[], options: object, tag: string): Promise<Lane[]> {
  const out: Lane[] = []
  for (const [i, contender] of contenders.entries()) {
    const client = new Redis(ctx.url, options)
    const counter = countCommands(client)
    const built = await contender.setup(client, `b${tag}${i}${Date.now().toString(36)}`, ctx)
    out.push({
      contender,
      counter,
      op: built.op,
      close: async () => {
        await built.close?.()
        client.disconnect()
      },
      samples: [],
    })
  }
  return out
}

/**
 * Runs every contender on the same server, interleaved round by round, and summarizes each. With
 * `pipelined`, every contender also runs on an auto-pipelining client, in the same rounds.
 */
export async function compare(
  ctx: Context,
  workload: string,
  contenders: Contender[],
  options: { pipelined?: boolean } = {},
): Promise<Row[]> {
  const plain = await lanes(ctx, contenders, CLIENT_OPTIONS, 'p')
  const pipelined = options.pipelined ? await lanes(ctx, contenders, PIPELINED_OPTIONS, 'a') : []
  const all = [...plain, ...pipelined]
  // Warm-up long enough for the JIT to settle on every contender's hot path.
  for (const lane of all)
    await run(lane.op, ctx.quick ? 200 : 2_000, 8, { client: lane.counter, admin: ctx.admin })
  for (const lane of all) lane.samples.length = 0
  const perRound = Math.floor(ctx.ops / ctx.rounds)
  for (let round = 0; round < ctx.rounds; round++) {
    // Each round starts with a different contender, so no library always runs first (or right
    // after the heaviest one).
    for (let j = 0; j < all.length; j++) {
      const lane = all[(j + round) % all.length]!
      lane.samples.push(
        await run((n) => lane.op(n + round * perRound), perRound, ctx.concurrency, {
          client: lane.counter,
          admin: ctx.admin,
        }),
      )
    }
  }
  for (const lane of all) await lane.close?.()
  const rows: Row[] = plain.map((lane, i) => {
    const c = lane.contender
    return {
      workload,
      name: c.name,
      library: c.library,
      settings: c.settings,
      ...summarize(lane.samples),
      ...(c.ownConnection ? { clientCommandsPerOp: Number.NaN } : {}),
      ...(c.floorOf ? { floorOf: c.floorOf } : {}),
      ...(pipelined[i] ? { pipelinedOpsPerSec: summarize(pipelined[i].samples).opsPerSec } : {}),
    }
  })
  const best = Math.max(...rows.filter(isPeer).map(bestOf))
  for (const r of rows) r.ratioToBestPeer = bestOf(r) / best
  return rows
}

const isPeer = (r: Row) => !r.library.startsWith('@rp/') && r.library !== 'baseline'
/** A contender's figure is its better column: users pick the client setting that suits them. */
const bestOf = (r: Row) => Math.max(r.opsPerSec, r.pipelinedOpsPerSec ?? 0)

const fmt = (n: number, digits = 0) =>
  Number.isFinite(n)
    ? n.toLocaleString('en-US', { maximumFractionDigits: digits, minimumFractionDigits: digits })
    : 'n/a'

export { fmt }

export function table(rows: Row[]): string[] {
  const pipelined = rows.some((r) => r.pipelinedOpsPerSec !== undefined)
  return [
    `### ${rows[0]?.workload ?? ''}`,
    '',
    `| Library | ops/s |${pipelined ? ' ops/s, auto-pipelining |' : ''} p50 ms | p99 ms | client cmds/op | server cmds/op | Redis CPU µs/op | vs best peer |`,
    `| --- | ---: |${pipelined ? ' ---: |' : ''} ---: | ---: | ---: | ---: | ---: | ---: |`,
    ...rows.map(
      (r) =>
        `| ${r.name} | ${fmt(r.opsPerSec)} |${pipelined ? ` ${fmt(r.pipelinedOpsPerSec ?? Number.NaN)} |` : ''} ${fmt(r.p50Ms, 2)} | ${fmt(r.p99Ms, 2)} | ${fmt(r.clientCommandsPerOp, 2)} | ${fmt(r.serverCommandsPerOp, 2)} | ${fmt(r.serverCpuUsPerOp, 1)} | ${fmt(r.ratioToBestPeer ?? Number.NaN, 2)}× |`,
    ),
    '',
    verdict(rows),
    '',
  ]
}

/** One sentence per table: does @rp win or lose on throughput against the best peer, in either column? */
export function verdict(rows: Row[]): string {
  const ours = rows.filter((r) => r.library.startsWith('@rp/')).sort((a, b) => bestOf(b) - bestOf(a))[0]
  const peer = rows.filter(isPeer).sort((a, b) => bestOf(b) - bestOf(a))[0]
  if (!ours || !peer) return ''
  const ratio = bestOf(ours) / bestOf(peer)
  // Within 3 % either way is inside what one round moves on a shared VM: call it level.
  const outcome = ratio >= 1.03 ? 'wins' : ratio > 0.97 ? 'is level on' : 'loses'
  const column = (r: Row) => ((r.pipelinedOpsPerSec ?? 0) > r.opsPerSec ? ' (auto-pipelining)' : '')
  const floors = rows.flatMap((floor) => {
    const row = floor.floorOf ? rows.find((r) => r.name === floor.floorOf) : undefined
    return row
      ? [
          ` ${row.name} runs at ${fmt(bestOf(row) / bestOf(floor), 2)}× the floor of batching (the same batched script from a raw ioredis client).`,
        ]
      : []
  })
  return `**@rp ${outcome} this workload**: ${ours.name}${column(ours)} runs at ${fmt(ratio, 2)}× ${peer.name}${column(peer)}.${floors.join('')}`
}
