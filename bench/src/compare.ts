import { type ChildProcess, fork } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import type { Redis, RedisOptions } from 'ioredis'
import { type Figures, measured, type Sample, summarize, type TimedRun } from './measure.js'

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

/**
 * Where a lane process finds its contender: a module of this directory, the function of it that
 * lists the table's contenders, and that function's arguments (sent as structured clones).
 */
export interface Suite {
  module: string
  list: string
  args?: unknown[]
}

export async function listContenders(suite: Suite): Promise<Contender[]> {
  const module = (await import(new URL(`./${suite.module}`, import.meta.url).href)) as Record<
    string,
    (...args: unknown[]) => Contender[]
  >
  const list = module[suite.list]
  if (typeof list !== 'function') throw new Error(`${suite.module} has no ${suite.list}`)
  return list(...(suite.args ?? []))
}

export interface LaneSetup {
  type: 'setup'
  suite: Suite
  name: string
  url: string
  prefix: string
  clientOptions: RedisOptions
  ctx: Omit<Context, 'url' | 'admin'>
}

export type LaneRequest =
  | LaneSetup
  | { type: 'run'; ops: number; concurrency: number; offset: number }
  | { type: 'close' }

export type LaneReply =
  | { type: 'ready' }
  | { type: 'done'; run: TimedRun }
  | { type: 'closed' }
  | { type: 'error'; message: string }

const LANE = fileURLToPath(new URL('./lane.ts', import.meta.url))

/** A contender running in a process of its own (lane.ts), one request at a time. */
class Lane {
  readonly samples: Sample[] = []
  readonly #child: ChildProcess
  #waiting: { resolve: (reply: LaneReply) => void; reject: (error: Error) => void } | null = null
  #exited: Error | null = null

  constructor(readonly contender: Contender) {
    this.#child = fork(LANE, [], {
      execArgv: ['--import', 'tsx'],
      serialization: 'advanced',
      stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    })
    this.#child.on('message', (reply: LaneReply) => {
      const waiting = this.#waiting
      this.#waiting = null
      if (reply.type === 'error') waiting?.reject(new Error(`${contender.name}: ${reply.message}`))
      else waiting?.resolve(reply)
    })
    this.#child.on('exit', (code) => {
      this.#exited = new Error(`${contender.name}: lane process exited (${code})`)
      this.#waiting?.reject(this.#exited)
      this.#waiting = null
    })
  }

  request(message: LaneRequest): Promise<LaneReply> {
    if (this.#exited) return Promise.reject(this.#exited)
    return new Promise((resolve, reject) => {
      this.#waiting = { resolve, reject }
      this.#child.send(message)
    })
  }

  async run(admin: Redis, ops: number, concurrency: number, offset: number): Promise<Sample> {
    return measured(admin, ops, async () => {
      const reply = await this.request({ type: 'run', ops, concurrency, offset })
      if (reply.type !== 'done') throw new Error(`${this.contender.name}: answered ${reply.type}`)
      return reply.run
    })
  }

  async close(): Promise<void> {
    if (this.#exited) return
    await this.request({ type: 'close' }).catch(() => {})
    this.#child.kill()
  }
}

async function lanes(
  ctx: Context,
  suite: Suite,
  contenders: Contender[],
  clientOptions: RedisOptions,
  tag: string,
): Promise<Lane[]> {
  const out = contenders.map((contender) => new Lane(contender))
  try {
    // Set up side by side: each lane fills its own prefix.
    await Promise.all(
      out.map((lane, i) =>
        lane.request({
          type: 'setup',
          suite,
          name: lane.contender.name,
          url: ctx.url,
          prefix: `b${tag}${i}${Date.now().toString(36)}`,
          clientOptions,
          ctx: { quick: ctx.quick, ops: ctx.ops, rounds: ctx.rounds, concurrency: ctx.concurrency },
        }),
      ),
    )
  } catch (error) {
    await Promise.all(out.map((lane) => lane.close()))
    throw error
  }
  return out
}

/**
 * Runs every contender of `suite` (those `only` keeps) on the same server, each in a process of
 * its own, interleaved round by round, and summarizes each. With `pipelined`, every contender also
 * runs on an auto-pipelining client, in the same rounds.
 */
export async function compare(
  ctx: Context,
  workload: string,
  suite: Suite,
  options: { pipelined?: boolean; only?: (contender: Contender) => boolean } = {},
): Promise<Row[]> {
  const contenders = (await listContenders(suite)).filter(options.only ?? (() => true))
  const plain = await lanes(ctx, suite, contenders, CLIENT_OPTIONS, 'p')
  const pipelined = options.pipelined ? await lanes(ctx, suite, contenders, PIPELINED_OPTIONS, 'a') : []
  const all = [...plain, ...pipelined]
  try {
    // Warm-up long enough for the JIT to settle on every contender's hot path.
    for (const lane of all) await lane.run(ctx.admin, ctx.quick ? 200 : 2_000, 8, 0)
    const perRound = Math.floor(ctx.ops / ctx.rounds)
    for (let round = 0; round < ctx.rounds; round++) {
      // Each round starts with a different contender, so no library always runs first (or right
      // after the heaviest one).
      for (let j = 0; j < all.length; j++) {
        const lane = all[(j + round) % all.length]!
        lane.samples.push(await lane.run(ctx.admin, perRound, ctx.concurrency, round * perRound))
      }
    }
  } finally {
    await Promise.all(all.map((lane) => lane.close()))
  }
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
