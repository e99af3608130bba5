import calculateSlot from 'cluster-key-slot'
import type { Cluster } from 'ioredis'
import type { RedisClient } from './client.js'
import { ScriptError } from './errors.js'
import {
  type CompiledLua,
  compileLua,
  type LuaParts,
  runLua,
  runLuaArgv,
  SCRIPT_PRELUDE,
  type ScriptArg,
  type ScriptFlag,
  translateScriptError,
} from './lua.js'

/**
 * Tick batching: the script calls one client is asked for in one tick go to Redis as one script
 * call, whose KEYS and ARGV carry every call and whose reply carries every answer. The limit on a
 * small machine is the client's and the server's cost per command, not the script's work, so this
 * is the lever for throughput and for Redis CPU alike. Each call keeps its own keys, its own
 * atomic step (a batch runs them one after another, in the order they were made) and its own
 * result or error; only the transport changes.
 */

/**
 * Calls per batch. It bounds how long one batch keeps Redis busy, and it keeps several batches in
 * flight, so the client handles one batch's answers while Redis runs the next: with all 64 calls
 * of a tick in one batch the two took turns, and a gcra check ran at 70k/s; in batches of 16,
 * 107k/s, at less Redis CPU per call (bench, 2 cores).
 */
export const MAX_BATCH_CALLS = 16
/** KEYS plus ARGV per batch, so a few calls with long argument lists do not make one huge command. */
const MAX_BATCH_ARGS = 8_192

/** What the batcher needs of a script. */
export interface BatchableScript {
  readonly compiled: CompiledLua
  /** The script's Lua in two parts: what runs once per batch (definitions) and what runs per call. */
  readonly parts: LuaParts
  readonly flags: readonly ScriptFlag[]
  decode(raw: unknown): unknown
}

interface Call {
  readonly script: BatchableScript
  readonly keys: readonly string[]
  readonly args: readonly ScriptArg[]
  readonly resolve: (value: unknown) => void
  readonly reject: (error: unknown) => void
  /** A call that later calls of its run may join (see Mergeable); its args are built at the flush. */
  readonly run?: Run
}

/**
 * Calls that may become one call. Consecutive calls of a tick's queue with the same script, keys
 * and `group` (nothing else queued between them) are sent as one call, whose args `join` builds
 * from their items in order, and each caller gets that call's reply. Nothing is reordered: a call
 * queued in between ends the run. (A pub/sub publish: the tick's messages to one channel become
 * one frame that every subscriber parses once.)
 */
export interface Mergeable {
  readonly group: string
  readonly item: string
  readonly join: (items: readonly string[]) => readonly ScriptArg[]
  /** Bounds on one merged call: items, and their characters. */
  readonly maxItems: number
  readonly maxChars: number
}

interface Run {
  readonly merge: Mergeable
  readonly items: string[]
  chars: number
  readonly waiters: Array<{ resolve: (value: unknown) => void; reject: (error: unknown) => void }>
}

/** Distinct scripts one batch may carry: each adds its body to the batch's wrapper. */
const MAX_SCRIPTS_PER_BATCH = 4
/** Wrappers for mixes of scripts, per process: each is a script Redis caches until SCRIPT FLUSH. */
const MAX_MIXES = 64

// The wrapper runs each script's own body as a function per call. KEYS and ARGV are that
// function's parameters, so the body reads its own slice. A batch of one script has one body; a
// batch that mixes scripts (a read and a write of one request, a lock's acquire and release) has
// each body once, and each call names its body, so the tick's calls still leave as one command.
// A script's setup (its local functions) runs once per batch, in a scope of its own, and its body
// closes over it: made per call, those closures cost a gcra check a fifth of its Redis time. The
// calls of a batch share one reading of the server clock (rp_time, see lua.ts): they run in one
// atomic step, so one instant is as true for all of them as for each, and TIME per call cost
// another fifth; rp_num's memo is per batch too. The reading lags Redis's own clock by what the
// earlier calls took, so an expiry set from it is relative (docs/conventions.md §3).
// pcall keeps one call's error (a wrong type, a corrupt value) from failing the others; a script
// that writes and then fails keeps its writes, as it would alone.
// ARGV: n, then the calls' shape: when every call has the same key and arg counts (most batches),
// those two counts; else n is negative, then n key counts and n arg counts. Then (with several
// bodies) n body numbers, then every call's args in order. Counts per call cost Redis two more
// arguments to parse and two tonumber per call, a tenth of an empty call's cost.
// Reply: every call's reply, in order; when a call failed, one more element, the list of the calls
// that failed (their replies are the error messages). A status per call cost each call one more
// reply element, and a table per call one more nested reply.
// A body whose KEYS and ARGV are read only at literal indexes (KEYS[1], ARGV[3]) reads them in
// place: the wrapper rewrites KEYS[i] to KEYS[rp_k + i] and hands it the batch's own tables and
// the call's offsets. Any other use (#ARGV, ARGV[i + 1]) gets the call's KEYS and ARGV as tables
// of their own, built with unpack; two tables per call cost a gcra check a tenth of its Redis time.
//
// A cluster node refuses declared KEYS of different slots (CROSSSLOT) even from a script flagged
// allow-cross-slot-keys; the flag only lets the script touch them. So the cross-slot form declares
// the first call's keys (which route the command to the node) and carries every call's keys in
// ARGV, after the counts. There, each call first probes its first key: a slot this node does not
// serve (a stale slot map) answers an error, and the call is skipped, to be resent per slot,
// before it ran anything (a body that reads with redis.pcall would not notice it itself).
// Errors keep Redis's "ERR " prefix where the body raised a bare message.
function wrapperBody(scripts: readonly LuaParts[], crossSlot: boolean): string {
  const mixed = scripts.length > 1
  return `${SCRIPT_PRELUDE}
local rp_fns = {
${scripts.map(callFunction).join(',\n')}
}
local n = tonumber(ARGV[1])
local nk, na, a = tonumber(ARGV[2]), tonumber(ARGV[3]), 3
if n < 0 then n, nk, na, a = -n, nil, nil, 1 - 2 * n end
local bodies = a
if ${mixed} then a = a + n end
local out, failed = {}, nil
local src, k = KEYS, 0
if ${crossSlot} then
  src, k = ARGV, a
  if nk then a = a + n * nk else for c = 1, n do a = a + tonumber(ARGV[1 + c]) end end
end
for c = 1, n do
  local ck, ca = nk, na
  if not ck then ck, ca = tonumber(ARGV[1 + c]), tonumber(ARGV[1 + n + c]) end
  local rp_call = rp_fns[${mixed ? 'tonumber(ARGV[bodies + c])' : '1'}]
  local ok, res = true, nil
  if ${crossSlot} then
    local probe = redis.pcall('EXISTS', src[k + 1])
    if type(probe) == 'table' and probe.err then ok, res = false, probe end
  end
  if ok then ok, res = pcall(rp_call, src, ARGV, k, a, ck, ca) end
  k, a = k + ck, a + ca
  if not ok then
    if type(res) == 'table' then res = res.err end
    res = tostring(res)
    if not string.find(res, '^%u+ ') then res = 'ERR ' .. res end
    ok = false
  elseif type(res) == 'table' and res.err then
    res, ok = res.err, false
  elseif res == nil then
    -- false, not nil: a hole would end the reply there. Both reach the client as nil.
    res = false
  end
  out[c] = res
  if not ok then
    failed = failed or {}
    failed[#failed + 1] = c
  end
end
if failed then out[n + 1] = failed end
return out`
}

const ANY_USE = /\b(KEYS|ARGV)\b/g
const LITERAL_USE = /\b(KEYS|ARGV)\s*\[\s*(\d+)\s*\]/g

/**
 * One script's entry in a wrapper: its setup, once, and a function (src, args, k, a, ck, ca) that
 * runs its body for the call whose ck keys follow src[k] and whose ca args follow args[a]. A call
 * with fewer keys or args than the body's highest literal index gets tables of its own too: read in
 * place, the index past its own would be the next call's, where alone it is nil.
 */
function callFunction({ setup, body }: LuaParts): string {
  let inPlace = body
  let maxKey = Number.POSITIVE_INFINITY
  let maxArg = Number.POSITIVE_INFINITY
  if ((body.match(ANY_USE)?.length ?? 0) === (body.match(LITERAL_USE)?.length ?? 0)) {
    maxKey = 0
    maxArg = 0
    inPlace = body.replace(LITERAL_USE, (_, table: string, index: string) => {
      const i = Number(index)
      const isArg = table === 'ARGV'
      if (isArg) maxArg = Math.max(maxArg, i)
      else maxKey = Math.max(maxKey, i)
      return `${table}[${isArg ? 'rp_a' : 'rp_k'} + ${i}]`
    })
  }
  const tablesOnly = maxKey === Number.POSITIVE_INFINITY
  return `(function()
${setup}
local function rp_body(KEYS, ARGV, rp_k, rp_a)
${inPlace}
end
return function(src, args, k, a, ck, ca)
  ${
    tablesOnly
      ? ''
      : `if ck >= ${maxKey} and ca >= ${maxArg} then return rp_body(src, args, k, a) end
  `
  }return rp_body({unpack(src, k + 1, k + ck)}, {unpack(args, a + 1, a + ca)}, 0, 0)
end
end)()`
}

interface WrapperPair {
  sameSlot: CompiledLua
  crossSlot: CompiledLua
}

function compileWrappers(
  name: string,
  scripts: readonly LuaParts[],
  flags: readonly ScriptFlag[],
): WrapperPair {
  return {
    sameSlot: compileLua(name, wrapperBody(scripts, false), flags),
    crossSlot: compileLua(name, wrapperBody(scripts, true), [...flags, 'allow-cross-slot-keys']),
  }
}

const EMPTY: readonly number[] = []
const wrappers = new WeakMap<BatchableScript, WrapperPair>()
const mixes = new Map<string, WrapperPair>()

/**
 * The wrapper of a batch of these scripts (sorted, so one mix has one wrapper whatever the order
 * of its calls), or null when the process already has MAX_MIXES mixes: then it batches per script.
 * The scripts of a mix share their flags (see flagsOf), which the mix takes.
 */
function wrapperOf(scripts: readonly BatchableScript[], crossSlot: boolean): CompiledLua | null {
  let pair: WrapperPair | undefined
  if (scripts.length === 1) {
    const script = scripts[0]!
    pair = wrappers.get(script)
    if (!pair) {
      pair = compileWrappers(script.compiled.name, [script.parts], script.flags)
      wrappers.set(script, pair)
    }
  } else {
    const id = scripts.map((s) => s.compiled.sha).join(',')
    pair = mixes.get(id)
    if (!pair) {
      if (mixes.size >= MAX_MIXES) return null
      pair = compileWrappers(
        scripts.map((s) => s.compiled.name).join('+'),
        scripts.map((s) => s.parts),
        scripts[0]!.flags,
      )
      mixes.set(id, pair)
    }
  }
  return crossSlot ? pair.crossSlot : pair.sameSlot
}

/** Clients whose cluster refused a cross-slot batch (Redis 6, or a proxy): they batch per slot. */
const noCrossSlot = new WeakSet<object>()

// The server cannot run a cross-slot batch at all (Redis 6 strips the flag; a proxy refuses it).
const UNSUPPORTED = /allow-cross-slot-keys|Unexpected flag|Unknown lua shebang|do not hash to the same slot/
// Errors a cluster node answers before a script runs, so the calls can be sent again per slot.
const ROUTING = new RegExp(
  `^(CROSSSLOT|MOVED|ASK|TRYAGAIN|Too many Cluster redirections)|non local key|${UNSUPPORTED.source}`,
)
// What one call of a cross-slot batch meets when its slot is not (or no longer) on that node. All
// keys of a call share a slot, so the first key it touches fails, before it wrote anything.
const MISROUTED = /non local key|do not hash to the same slot|^(MOVED|ASK|TRYAGAIN|CLUSTERDOWN)/

class Batcher {
  readonly #redis: RedisClient
  #queue: Call[] = []
  #scheduled = false
  /** Whether the queue holds a mergeable call, whose args are built at the flush. */
  #runs = false

  constructor(redis: RedisClient) {
    this.#redis = redis
    keepOrder(redis, this)
  }

  get pending(): boolean {
    return this.#queue.length > 0
  }

  add(call: Call): void {
    const run = call.run
    if (run) {
      const last = this.#queue[this.#queue.length - 1]
      const open = last?.run
      const { merge } = run
      if (
        open &&
        last.script === call.script &&
        open.merge.group === merge.group &&
        open.merge.join === merge.join &&
        sameKeys(last.keys, call.keys) &&
        open.items.length < merge.maxItems &&
        open.chars + merge.item.length <= merge.maxChars
      ) {
        open.items.push(merge.item)
        open.chars += merge.item.length
        open.waiters.push(run.waiters[0]!)
        return
      }
      this.#runs = true
    }
    this.#queue.push(call)
    // A full batch leaves at once: Redis runs it while this tick makes its other calls (answers
    // that arrived together start their callers' next calls in one cascade). Held to the tick's
    // end, the client and Redis took turns. A cluster waits for the tick, which it splits per master.
    // Not on a mergeable call: the calls after it in this tick may still join it.
    if (this.#queue.length >= MAX_BATCH_CALLS && !call.run && !this.#redis.isCluster) {
      this.flush()
      return
    }
    if (!this.#scheduled) {
      this.#scheduled = true
      // After the microtasks of this tick, so calls made in a cascade of resolutions (a batch's
      // answers each starting the caller's next call) join the next batch. Never a timer: an idle
      // caller's call leaves at once.
      process.nextTick(this.flush)
    }
  }

  /** Sends what is queued now. Idempotent: the scheduled flush finds an empty queue. */
  readonly flush = (): void => {
    this.#scheduled = false
    const queue = this.#queue
    if (queue.length === 0) return
    this.#queue = []
    let calls = queue
    if (this.#runs) {
      this.#runs = false
      calls = []
      for (const call of queue) {
        const sent = call.run ? merged(call, call.run) : call
        if (sent) calls.push(sent)
      }
      if (calls.length === 0) return
    }
    try {
      if (!this.#redis.isCluster) this.#sendRuns(calls, false)
      else this.#sendCluster(calls)
    } catch (error) {
      // Grouping cannot throw, and sending rejects instead of throwing (runLua), so this is a
      // last guard: nothing was sent when it runs, and every call still settles.
      for (const call of calls) call.reject(error)
    }
  }

  // A cluster node gets its calls in the order they were made; nodes are independent.
  #sendCluster(calls: Call[]): void {
    const cluster = this.#redis as Cluster
    const crossSlot = !noCrossSlot.has(cluster)
    const groups = new Map<string, Call[]>()
    for (const call of calls) {
      const key = call.keys[0]
      const slot = key === undefined ? -1 : calculateSlot(key)
      if (slot >= 0 && !inOneSlot(call.keys, slot)) {
        // Alone it gets CROSSSLOT; in a cross-slot batch it might run, or run half.
        this.#send([call], [call.script], false)
        continue
      }
      const node = crossSlot && slot >= 0 ? cluster.slots[slot]?.[0] : undefined
      const id = node ?? `slot:${slot}`
      const group = groups.get(id)
      if (group) group.push(call)
      else groups.set(id, [call])
    }
    for (const [id, group] of groups) this.#sendRuns(group, !id.startsWith('slot:'))
  }

  // Calls share a batch in the order they were made (the batches leave on one connection, in
  // order), up to MAX_BATCH_CALLS calls, MAX_BATCH_ARGS arguments and MAX_SCRIPTS_PER_BATCH
  // scripts, all with the same flags. With `separate`, a call of another script starts the next
  // batch.
  #sendRuns(calls: Call[], crossSlot: boolean, separate = false): void {
    let start = 0
    let size = 0
    let scripts: BatchableScript[] = []
    for (let i = 0; i < calls.length; i++) {
      const call = calls[i]!
      const weight = call.keys.length + call.args.length + 2
      const another = !scripts.includes(call.script)
      if (
        i > start &&
        (i - start >= MAX_BATCH_CALLS ||
          size + weight > MAX_BATCH_ARGS ||
          (another &&
            (separate ||
              scripts.length >= MAX_SCRIPTS_PER_BATCH ||
              flagsOf(call.script) !== flagsOf(scripts[0]!))))
      ) {
        this.#send(calls.slice(start, i), scripts, crossSlot)
        start = i
        size = 0
        scripts = []
      }
      if (!scripts.includes(call.script)) scripts.push(call.script)
      size += weight
    }
    this.#send(start === 0 ? calls : calls.slice(start), scripts, crossSlot)
  }

  #send(calls: Call[], scripts: BatchableScript[], crossSlot: boolean): void {
    const redis = this.#redis
    if (calls.length === 1) {
      const call = calls[0]!
      runLua(redis, call.script.compiled, call.keys, call.args).then((raw) => settle(call, raw), call.reject)
      return
    }
    // Cross-slot keys only when they really are: a batch of one slot declares them all as KEYS.
    const mixed = crossSlot && !sameSlot(calls)
    if (scripts.length > 1) scripts.sort((a, b) => (a.compiled.sha < b.compiled.sha ? -1 : 1))
    const wrapper = wrapperOf(scripts, mixed)
    if (!wrapper) {
      this.#sendRuns(calls, crossSlot, true)
      return
    }
    const n = calls.length
    const several = scripts.length > 1
    // The command's arguments at their final size (runLuaArgv): two slots for the hash and the key
    // count, the declared keys, the counts, then every call's keys (cross-slot) and args.
    const declared = mixed ? calls[0]!.keys.length : 0
    let keyTotal = 0
    let argTotal = 0
    for (let c = 0; c < n; c++) {
      keyTotal += calls[c]!.keys.length
      argTotal += calls[c]!.args.length
    }
    const numKeys = mixed ? declared : keyTotal
    const first = calls[0]!
    let uniform = true
    for (let c = 1; c < n && uniform; c++)
      uniform = calls[c]!.keys.length === first.keys.length && calls[c]!.args.length === first.args.length
    const counts = (uniform ? 3 : 2 * n + 1) + (several ? n : 0)
    const argv = new Array<ScriptArg>(2 + numKeys + counts + (mixed ? keyTotal : 0) + argTotal)
    let at = 2
    if (mixed) for (const key of first.keys) argv[at++] = key
    else for (let c = 0; c < n; c++) for (const key of calls[c]!.keys) argv[at++] = key
    if (uniform) {
      argv[at++] = n
      argv[at++] = first.keys.length
      argv[at++] = first.args.length
    } else {
      argv[at++] = -n
      for (let c = 0; c < n; c++) {
        argv[at + c] = calls[c]!.keys.length
        argv[at + n + c] = calls[c]!.args.length
      }
      at += 2 * n
    }
    if (several) for (let c = 0; c < n; c++) argv[at++] = scripts.indexOf(calls[c]!.script) + 1
    if (mixed) for (let c = 0; c < n; c++) for (const key of calls[c]!.keys) argv[at++] = key
    for (let c = 0; c < n; c++) for (const arg of calls[c]!.args) argv[at++] = arg
    runLuaArgv(redis, wrapper, numKeys, argv).then(
      (reply) => {
        const answers = reply as unknown[]
        // The calls that failed, in order (1-based), when any did.
        const failed = answers.length > n ? (answers[n] as number[]) : EMPTY
        let next = 0
        const misrouted: Call[] = []
        for (let c = 0; c < n; c++) {
          const call = calls[c]!
          const answer = answers[c]
          // Number(): a client with ioredis's stringNumbers answers integers as strings.
          if (Number(failed[next]) !== c + 1) settle(call, answer ?? null)
          else {
            next++
            if (mixed && MISROUTED.test(String(answer))) misrouted.push(call)
            else call.reject(translateScriptError(call.script.compiled.name, new Error(String(answer))))
          }
        }
        if (misrouted.length > 0) this.#sendBySlot(misrouted)
      },
      (error: unknown) => {
        if (mixed && ROUTING.test(messageOf(error))) {
          // The server cannot take this batch (Redis 6, a proxy): batch per slot from now on. A
          // slot that moved under a stale map (MOVED, ASK) only needs this batch sent per slot.
          if (UNSUPPORTED.test(messageOf(error))) noCrossSlot.add(redis)
          this.#sendBySlot(calls)
          return
        }
        // A mix fails as each of its scripts would alone (they share their flags), named for
        // each caller's own script.
        for (const call of calls) call.reject(several ? renamed(error, call.script.compiled.name) : error)
      },
    )
  }

  // Per slot, where the client follows MOVED and ASK itself.
  #sendBySlot(calls: Call[]): void {
    const bySlot = new Map<number, Call[]>()
    for (const call of calls) {
      const slot = calculateSlot(call.keys[0]!)
      const group = bySlot.get(slot)
      if (group) group.push(call)
      else bySlot.set(slot, [call])
    }
    for (const group of bySlot.values()) this.#sendRuns(group, false)
  }
}

/**
 * A script's flags as one string. Only scripts with the same flags share a batch: a mix is refused
 * at maxmemory, or on a replica, or without enough replicas, exactly when each of its scripts
 * alone would be, so a refusal never has to be split up and resent out of order.
 */
function flagsOf(script: BatchableScript): string {
  return script.flags.length === 0 ? '' : [...script.flags].sort().join(',')
}

/** A whole mix's ScriptError, named for one of its calls' scripts. */
function renamed(error: unknown, name: string): unknown {
  if (!(error instanceof ScriptError)) return error
  const cause = (error as { cause?: unknown }).cause
  return new ScriptError(name, cause instanceof Error ? cause.message : error.message, { cause })
}

function messageOf(error: unknown): string {
  const cause = (error as { cause?: unknown })?.cause
  const source = cause instanceof Error ? cause : error
  return source instanceof Error ? source.message : String(source)
}

function inOneSlot(keys: readonly string[], slot: number): boolean {
  for (let k = 1; k < keys.length; k++) if (calculateSlot(keys[k]!) !== slot) return false
  return true
}

function sameSlot(calls: readonly Call[]): boolean {
  const first = calculateSlot(calls[0]!.keys[0]!)
  for (let c = 1; c < calls.length; c++) if (calculateSlot(calls[c]!.keys[0]!) !== first) return false
  return true
}

function settle(call: Call, raw: unknown): void {
  let value: unknown
  try {
    value = call.script.decode(raw)
  } catch (error) {
    call.reject(error)
    return
  }
  call.resolve(value)
}

const batchers = new WeakMap<RedisClient, Batcher>()

/**
 * A command sent on the client while calls wait for the end of the tick would overtake them: a
 * delete issued after a read, in the same tick, would run first. So the client's sendCommand
 * sends the waiting batch first. (With enableAutoPipelining ioredis queues plain commands before
 * they reach sendCommand, while script calls go around that queue (lua.ts), so there a plain
 * command of the same tick may run before or after them.)
 */
function keepOrder(redis: RedisClient, batcher: Batcher): void {
  const client = redis as unknown as { sendCommand: (...args: unknown[]) => unknown }
  const own = Object.hasOwn(client, 'sendCommand') ? client.sendCommand : undefined
  client.sendCommand = function (this: unknown, ...args: unknown[]) {
    if (batcher.pending) batcher.flush()
    const send = own ?? (Object.getPrototypeOf(this) as typeof client).sendCommand
    return send.apply(this, args)
  }
}

function sameKeys(a: readonly string[], b: readonly string[]): boolean {
  if (a.length !== b.length) return false
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false
  return true
}

/** A run's call as sent: its args joined from its items, its reply or error to every caller. */
function merged(call: Call, run: Run): Call | null {
  const { waiters } = run
  let args: readonly ScriptArg[]
  try {
    args = run.merge.join(run.items)
    if (!Array.isArray(args)) throw new TypeError('a Mergeable join must return an array of arguments')
  } catch (error) {
    for (const w of waiters) w.reject(error)
    return null
  }
  return {
    script: call.script,
    keys: call.keys,
    args,
    resolve: (value) => {
      for (const w of waiters) w.resolve(value)
    },
    reject: (error) => {
      for (const w of waiters) w.reject(error)
    },
  }
}

function batcherFor(redis: RedisClient): Batcher {
  let batcher = batchers.get(redis)
  if (!batcher) {
    batcher = new Batcher(redis)
    batchers.set(redis, batcher)
  }
  return batcher
}

/** Runs one script call in this tick's batch for `redis`. */
export function runBatched(
  redis: RedisClient,
  script: BatchableScript,
  keys: readonly string[],
  args: readonly ScriptArg[],
): Promise<unknown> {
  const batcher = batcherFor(redis)
  return new Promise((resolve, reject) => {
    batcher.add({ script, keys, args, resolve, reject })
  })
}

/** Like runBatched, for a call that the calls next to it in the tick's queue may join. */
export function runMergeable(
  redis: RedisClient,
  script: BatchableScript,
  keys: readonly string[],
  merge: Mergeable,
): Promise<unknown> {
  const batcher = batcherFor(redis)
  return new Promise((resolve, reject) => {
    const run: Run = { merge, items: [merge.item], chars: merge.item.length, waiters: [{ resolve, reject }] }
    batcher.add({ script, keys, args: [], resolve, reject, run })
  })
}
