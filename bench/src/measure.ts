import { parseInfo } from '@rp/core'
import type { Redis } from 'ioredis'

export interface Sample {
  latenciesMs: number[]
  elapsedMs: number
  ops: number
  clientCommands: number
  serverCommands: number
  /** Redis's own CPU time (user + sys, INFO cpu) while the sample ran, in µs. */
  serverCpuUs: number
}

export interface Figures {
  opsPerSec: number
  p50Ms: number
  p99Ms: number
  /** Commands the client sent (round trips' worth of work), per operation. */
  clientCommandsPerOp: number
  /** Commands Redis executed per operation, including those run inside scripts (INFO commandstats). */
  serverCommandsPerOp: number
  /**
   * Redis CPU per operation in µs: what a shared Redis pays for each call, whoever sends it,
   * parsing and syscalls included. Rounds are long enough that INFO's 10 ms resolution is noise.
   */
  serverCpuUsPerOp: number
}

async function serverCpuUs(admin: Redis): Promise<number> {
  const info = parseInfo(await admin.info('cpu'))
  return (Number(info.used_cpu_user) + Number(info.used_cpu_sys)) * 1e6
}

/** Counts every command the client writes, pipelines and MULTI/EXEC included. */
export function countCommands(client: Redis): () => number {
  let count = 0
  const original = client.sendCommand.bind(client)
  client.sendCommand = ((...args: Parameters<Redis['sendCommand']>) => {
    count++
    return original(...args)
  }) as Redis['sendCommand']
  return () => count
}

export async function serverCommandCount(admin: Redis): Promise<number> {
  const stats = parseInfo(await admin.info('commandstats'))
  let total = 0
  for (const [name, value] of Object.entries(stats)) {
    if (name === 'cmdstat_info' || name.startsWith('cmdstat_config')) continue
    total += Number(/calls=(\d+)/.exec(value)?.[1] ?? 0)
  }
  return total
}

/** What a run of `op` measures in the process that runs it: its latencies, time and commands sent. */
export interface TimedRun {
  latenciesMs: number[]
  elapsedMs: number
  clientCommands: number
}

/** Runs `op` `ops` times with `concurrency` callers in flight, timing each call (op gets i + offset). */
export async function timedLoop(
  op: (i: number) => Promise<unknown>,
  ops: number,
  concurrency: number,
  client: () => number,
  offset = 0,
): Promise<TimedRun> {
  const latencies = new Array<number>(ops)
  let next = 0
  const clientBefore = client()
  const started = performance.now()
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      for (let i = next++; i < ops; i = next++) {
        const t = performance.now()
        await op(i + offset)
        latencies[i] = performance.now() - t
      }
    }),
  )
  return {
    latenciesMs: latencies,
    elapsedMs: performance.now() - started,
    clientCommands: client() - clientBefore,
  }
}

/**
 * Takes the server's figures around `timed` (a run in this process or in a lane's own): commands
 * executed and CPU used. The INFO call that took the "before" figure is itself counted once.
 */
export async function measured(admin: Redis, ops: number, timed: () => Promise<TimedRun>): Promise<Sample> {
  const serverBefore = await serverCommandCount(admin)
  const cpuBefore = await serverCpuUs(admin)
  const run = await timed()
  const serverAfter = await serverCommandCount(admin)
  const cpuAfter = await serverCpuUs(admin)
  return {
    ...run,
    ops,
    serverCommands: serverAfter - serverBefore,
    serverCpuUs: cpuAfter - cpuBefore,
  }
}

/** Runs `op` `ops` times with `concurrency` callers in flight in this process, with the server's figures. */
export function run(
  op: (i: number) => Promise<unknown>,
  ops: number,
  concurrency: number,
  counters: { client: () => number; admin: Redis },
): Promise<Sample> {
  return measured(counters.admin, ops, () => timedLoop(op, ops, concurrency, counters.client))
}

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? Number.NaN
}

export function summarize(samples: Sample[]): Figures {
  const latencies = samples.flatMap((s) => s.latenciesMs).sort((a, b) => a - b)
  const ops = samples.reduce((a, s) => a + s.ops, 0)
  // The median round, not the total: a burst of load from a neighbour on a shared VM then moves
  // one round of one contender instead of its whole figure.
  const perRound = samples.map((s) => (s.ops / s.elapsedMs) * 1000).sort((a, b) => a - b)
  return {
    opsPerSec: percentile(perRound, 50),
    p50Ms: percentile(latencies, 50),
    p99Ms: percentile(latencies, 99),
    clientCommandsPerOp: samples.reduce((a, s) => a + s.clientCommands, 0) / ops,
    serverCommandsPerOp: samples.reduce((a, s) => a + s.serverCommands, 0) / ops,
    serverCpuUsPerOp: samples.reduce((a, s) => a + s.serverCpuUs, 0) / ops,
  }
}
