import { type BatchableScript, type Mergeable, runBatched, runMergeable } from './batch.js'
import type { RedisClient } from './client.js'
import { InvalidArgumentError } from './errors.js'
import { compileLua, joinLua, runLua, type ScriptArg } from './lua.js'
import { requireBoolean, requireKnownOptions, requireNonEmptyString, requireOptions } from './validate.js'

export type { ScriptArg } from './lua.js'

/** Calls with more KEYS plus ARGV than this skip tick batching and run alone. */
export const SOLO_ARGS = 256

/** The option every pattern takes to turn tick batching off for one instance. */
export interface BatchOption {
  /**
   * Default true: the script calls this instance makes in one tick leave as one script call per
   * connection (per node on a cluster), each with its own keys, atomic step and answer. `false`
   * sends every call alone; the results are the same, only slower under concurrency.
   */
  batch?: boolean
}

export interface ScriptRunOptions {
  /**
   * Default true: the call joins this tick's batch for its client, one script call carrying every
   * call of the tick (see batch.ts). False sends it alone, for callers that turned batching off.
   */
  batch?: boolean
}

export interface ScriptDefinition<Reply> {
  /** Stable, unique name, e.g. `ratelimit.gcra`; shows in errors and instrumentation. */
  name: string
  /**
   * How many KEYS the script takes; every call is checked against it. `'variadic'` for scripts
   * that take any number (e.g. one pair of keys per policy); they still must share one slot.
   */
  keys: number | 'variadic'
  /**
   * One call: reads KEYS and ARGV, returns the reply. The server clock is `rp_now_ms()`,
   * `rp_now_us()` or `rp_time()` (TIME's reply); numbers go through `rp_num` and `rp_int` (lua.ts).
   */
  lua: string
  /**
   * Lua the script's calls share, run before `lua`: local functions and constants. In a tick's
   * batch it runs once for all of the script's calls, so closures are not made per call. It must
   * not read KEYS or ARGV; the clock and numbers are as in `lua`.
   */
  setup?: string
  /**
   * Redis 7 script flags, sent as a `#!lua flags=…` line. Default none: the script may write and
   * is refused as a whole when Redis is out of memory, before it runs (a script without the line
   * is checked only at its first deny-oom command, so one that starts with DEL or ZREMRANGEBYSCORE
   * went on writing past maxmemory). `no-writes` for read-only scripts, which keep working at OOM;
   * `allow-oom` for scripts that only free memory or move a TTL (release, extend). On Redis 6 the
   * line is dropped and these guarantees fall back to Redis 6's own checks.
   */
  flags?: ReadonlyArray<'no-writes' | 'allow-oom'>
  /** Turns the raw reply into the typed result. */
  decode?: (raw: unknown) => Reply
}

export interface Script<Reply = unknown> {
  readonly name: string
  readonly keys: number | 'variadic'
  readonly lua: string
  readonly sha: string
  /**
   * One round trip in the common case: EVALSHA, and EVAL only when the node answers NOSCRIPT (its
   * script cache was flushed, or it restarted, or a replica was promoted). EVAL also caches the
   * script on that node, so the next call is EVALSHA again. By default the call joins this tick's
   * batch for `redis` (one EVALSHA for every call of the tick, per node on a cluster); its reply
   * or error is its own either way.
   */
  run(
    redis: RedisClient,
    keys: readonly string[],
    args?: readonly ScriptArg[],
    options?: ScriptRunOptions,
  ): Promise<Reply>
  /**
   * `run` in this tick's batch for a call that the calls next to it in the batch may join: a run
   * of them is sent as one call, whose args `merge.join` builds from their items (see Mergeable).
   */
  runMerged(redis: RedisClient, keys: readonly string[], merge: Mergeable): Promise<Reply>
}

/** Declares a named Lua script once; packages call `run` on any client, standalone or cluster. */
/** Run options already checked: a guard passes the same object on every call of its hot path. */
const checkedRunOptions = new WeakSet<object>()

function checkRunOptions(options: ScriptRunOptions): void {
  if (checkedRunOptions.has(options)) return
  requireKnownOptions('options', requireOptions('options', options), ['batch'])
  if (options.batch !== undefined) requireBoolean('batch', options.batch)
  checkedRunOptions.add(options)
}

function requireString(name: string, value: unknown): string {
  if (typeof value !== 'string') throw new InvalidArgumentError(name, `must be a string, got ${typeof value}`)
  return value
}

export function defineScript<Reply = unknown>(definition: ScriptDefinition<Reply>): Script<Reply> {
  requireKnownOptions('definition', requireOptions('definition', definition), [
    'name',
    'keys',
    'lua',
    'setup',
    'flags',
    'decode',
  ])
  const { name, keys: keyCount } = definition
  if (keyCount !== 'variadic' && (!Number.isInteger(keyCount) || keyCount < 0)) {
    throw new InvalidArgumentError('keys', `script ${name}: must be an integer >= 0 or 'variadic'`)
  }
  // A raw TypeError from deep in joinLua would not say which part was wrong.
  const body = requireNonEmptyString('lua', definition.lua)
  const setup = definition.setup === undefined ? '' : requireString('setup', definition.setup)
  const flags = definition.flags ?? []
  const parts = { setup, body }
  const compiled = compileLua(name, joinLua(parts), flags)
  const decode = definition.decode ?? ((raw: unknown) => raw as Reply)
  const batchable: BatchableScript = { compiled, parts, flags, decode }
  const wrongKeys = (keys: readonly string[]): Promise<never> =>
    Promise.reject(
      new InvalidArgumentError('keys', `script ${name} takes ${keyCount} keys, got ${keys.length}`),
    )
  return {
    name,
    keys: keyCount,
    lua: compiled.lua,
    sha: compiled.sha,
    run(redis, keys, args = [], options) {
      if (keyCount !== 'variadic' && keys.length !== keyCount) return wrongKeys(keys)
      if (options !== undefined) {
        try {
          checkRunOptions(options)
        } catch (error) {
          return Promise.reject(error)
        }
      }
      // A call with hundreds of arguments is a bulk operation: sharing a round trip saves it next to
      // nothing, and the batch wrapper would copy every argument once more inside Redis.
      if (options?.batch === false || keys.length + args.length > SOLO_ARGS)
        return runLua(redis, compiled, keys, args).then(decode)
      return runBatched(redis, batchable, keys, args) as Promise<Reply>
    },
    runMerged(redis, keys, merge) {
      if (keyCount !== 'variadic' && keys.length !== keyCount) return wrongKeys(keys)
      return runMergeable(redis, batchable, keys, merge) as Promise<Reply>
    },
  }
}
