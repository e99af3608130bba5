import { Redis } from 'ioredis'
import type { Context } from './compare.js'

/**
 * The floor of tick batching (issue 14): a plain ioredis client that sends the very script @rp's
 * batcher sends, with the same KEYS and ARGV, one EVALSHA per 16 calls of a tick, and hands each
 * caller its raw reply. It pays Redis's cost of the batched script and the least client cost a
 * batch can have, so @rp's row against it is what @rp's client path costs on top.
 */

type Arg = string | number

interface CapturedCall {
  keys: string[]
  args: Arg[]
}

/** What @rp sent for the first batch of a tick: the wrapper's source and the first call's keys and args. */
export interface CapturedBatch {
  source: string
  first: CapturedCall
}

/**
 * Runs `drive` on a client of its own and records the first batch wrapper it sends. A client's
 * first call of a script is an EVAL, so the source is on the wire; the wrapper's ARGV starts with
 * the number of calls and their shape (core's batch.ts).
 */
export async function captureBatch(
  ctx: Context,
  drive: (redis: Redis) => Promise<void>,
): Promise<CapturedBatch> {
  return (await captureBatches(ctx, drive, 1))[0]!
}

/** captureBatch for the first `count` distinct wrappers sent (a lock's acquire, then its release). */
export async function captureBatches(
  ctx: Context,
  drive: (redis: Redis) => Promise<void>,
  count: number,
): Promise<CapturedBatch[]> {
  const redis = new Redis(ctx.url, { enableAutoPipelining: false })
  const captured: CapturedBatch[] = []
  const send = redis.sendCommand.bind(redis)
  // Patched before any @rp instance wraps sendCommand, so core's own wrapper calls this one.
  redis.sendCommand = ((command: { name: string; args: unknown[] }, ...rest: unknown[]) => {
    const source = String(command.args[0])
    if (
      captured.length < count &&
      command.name === 'eval' &&
      source.includes('rp_fns') &&
      !captured.some((c) => c.source === source)
    )
      captured.push(parse(command.args.map((a) => (Buffer.isBuffer(a) ? a.toString() : (a as Arg)))))
    return (send as (...a: unknown[]) => unknown)(command, ...rest)
  }) as typeof redis.sendCommand
  try {
    await drive(redis)
  } finally {
    redis.disconnect()
  }
  if (captured.length < count) throw new Error(`the @rp instance sent ${captured.length} of ${count} batches`)
  return captured
}

function parse(argv: Arg[]): CapturedBatch {
  const source = String(argv[0])
  const numKeys = Number(argv[1])
  const keys = argv.slice(2, 2 + numKeys).map(String)
  const args = argv.slice(2 + numKeys)
  let n = Number(args[0])
  // Calls of one shape: n, key count, arg count. Else -n, the n key counts, the n arg counts.
  const keyCount = Number(args[1])
  let argCount = Number(args[2])
  let start = 3
  if (n < 0) {
    n = -n
    argCount = Number(args[1 + n])
    start = 1 + 2 * n
  }
  return {
    source,
    first: { keys: keys.slice(0, keyCount), args: args.slice(start, start + argCount) },
  }
}

/**
 * An op that queues its call for the tick, like @rp's batcher, and sends each 16 as one EVALSHA of
 * the captured wrapper, a full 16 at once. `keysFor(i)` and `argsFor(i)` give the i-th call's keys
 * and args (default: the first call's args).
 */
export async function floorOp(
  redis: Redis,
  batch: CapturedBatch,
  keysFor: (i: number) => string[],
  argsFor: (i: number) => Arg[] = () => batch.first.args,
): Promise<(i: number) => Promise<unknown>> {
  const sha = (await redis.script('LOAD', batch.source)) as string
  let queue: Array<{
    keys: string[]
    args: Arg[]
    resolve: (v: unknown) => void
    reject: (e: unknown) => void
  }> = []
  const flush = () => {
    const calls = queue
    queue = []
    for (let start = 0; start < calls.length; start += 16) {
      const group = calls.slice(start, start + 16)
      const n = group.length
      const keys: string[] = []
      // Every call has the first call's shape (the keys and args of one operation).
      const argv: Arg[] = [n, group[0]!.keys.length, group[0]!.args.length]
      for (const c of group) keys.push(...c.keys)
      for (const c of group) argv.push(...c.args)
      redis.evalsha(sha, keys.length, ...keys, ...argv).then(
        (reply) => {
          const answers = reply as unknown[]
          const failed = ((answers.length > n ? answers[n] : []) as unknown[]).map(Number)
          for (let j = 0; j < n; j++) {
            const c = group[j]!
            if (failed.includes(j + 1)) c.reject(new Error(String(answers[j])))
            else c.resolve(answers[j])
          }
        },
        (error: unknown) => {
          for (const c of group) c.reject(error)
        },
      )
    }
  }
  return (i) =>
    new Promise((resolve, reject) => {
      if (queue.length === 0) process.nextTick(flush)
      queue.push({ keys: keysFor(i), args: argsFor(i), resolve, reject })
      // As @rp's batcher: a full batch leaves at once, not at the end of the tick.
      if (queue.length === 16) flush()
    })
}
