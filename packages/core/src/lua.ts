import { createHash } from 'node:crypto'
import { Command } from 'ioredis'
import type { RedisClient } from './client.js'
import { ScriptError, toRpError } from './errors.js'

export type ScriptArg = string | number | Buffer

export type ScriptFlag = 'no-writes' | 'allow-oom' | 'allow-cross-slot-keys'

/** A Lua source ready to send: with its flags line (Redis 7) and without it (Redis 6). */
export interface CompiledLua {
  readonly name: string
  /** The source with its `#!lua flags=…` line. */
  readonly lua: string
  /** The source without it, for servers older than Redis 7. */
  readonly body: string
  readonly sha: string
  readonly legacySha: string
}

/**
 * A script's Lua in two parts. `setup` defines what its calls share (local functions, constants):
 * it must not read KEYS or ARGV, and reads the clock only through rp_time. `body` is one call: it
 * reads KEYS and ARGV and returns the reply. Alone, the script is setup then body; in a tick's
 * batch, setup runs once for all of the script's calls (batch.ts).
 */
export interface LuaParts {
  readonly setup: string
  readonly body: string
}

/**
 * What a script may use besides Redis's own Lua: the server clock and a number parser. The clock
 * is read once per call alone and once per batch (one atomic step: one instant is as true for all
 * of its calls as for each), and parsed once:
 * - `rp_time()`: TIME's reply (strings);
 * - `rp_now_us()`, `rp_now_ms()`: that reading as numbers (µs, and ms rounded down);
 * - `rp_num(s)`: tonumber(s), memoised per batch, for numbers that repeat across calls (a limit, a
 *   TTL). Redis's Lua turns a string into a number with the C library's strtod, which cost 0.4 µs
 *   of Redis time per 16-digit number on the bench host, and parsing TIME per call cost a cache
 *   read a fifth of its Redis time; a table lookup of an interned string costs a twentieth of
 *   that. A number unique to one call (a deadline, a nonce) gains nothing from the memo: tonumber.
 * - `rp_int(x)`: an integer as its decimal string, for a number that may pass 2^31 (a time, a
 *   token). `%.0f` and `%.17g` take the C library's exact float printing, 0.9 µs per 16-digit
 *   number; `%d` takes 0.2, but it is a C long, 32 bits on armhf and i386 builds, so it is used
 *   only where it holds 2^53, and only for a number within ±2^53 (beyond that, or NaN, `%d` would
 *   print the long's minimum): others are printed as Redis would, `%.17g`. Redis turns a number
 *   handed to redis.call into text with `%.17g` too, so a script hands it rp_int(x), or the ARGV
 *   string it came from.
 */
export const SCRIPT_PRELUDE = `local rp_clock, rp_us, rp_ms
local function rp_time()
  if not rp_clock then rp_clock = redis.call('TIME') end
  return rp_clock
end
local function rp_now_us()
  if not rp_us then
    local t = rp_time()
    rp_us = tonumber(t[1]) * 1000000 + tonumber(t[2])
  end
  return rp_us
end
local function rp_now_ms()
  if not rp_ms then rp_ms = math.floor(rp_now_us() / 1000) end
  return rp_ms
end
local rp_int_form = string.format('%d', 2 ^ 53) == '9007199254740992' and '%d' or '%.0f'
local function rp_int(x)
  if x < 9007199254740992 and x > -9007199254740992 then return string.format(rp_int_form, x) end
  return string.format('%.17g', x)
end
local rp_nums = {}
local function rp_num(s)
  local v = rp_nums[s]
  if v == nil then
    v = tonumber(s)
    rp_nums[s] = v
  end
  return v
end`

const USES_PRELUDE = /\brp_(time|now_us|now_ms|num|int)\b/

/** Setup then body, after the prelude when either part uses it. */
export function joinLua({ setup, body }: LuaParts): string {
  const prelude = USES_PRELUDE.test(setup) || USES_PRELUDE.test(body) ? `${SCRIPT_PRELUDE}\n` : ''
  return setup ? `${prelude}${setup}\n${body}` : `${prelude}${body}`
}

export function compileLua(name: string, body: string, flags: readonly ScriptFlag[] = []): CompiledLua {
  const lua = `#!lua${flags.length ? ` flags=${flags.join(',')}` : ''}\n${body}`
  return {
    name,
    lua,
    body,
    sha: createHash('sha1').update(lua).digest('hex'),
    legacySha: createHash('sha1').update(body).digest('hex'),
  }
}

function isNoScript(error: unknown): boolean {
  return error instanceof Error && error.message.startsWith('NOSCRIPT')
}

// Redis 6 cannot parse the shebang line: "Error compiling script ... unexpected symbol near '#'".
function isShebangRejected(error: unknown): boolean {
  return error instanceof Error && /compiling script.*near '#'/.test(error.message)
}

/** Servers (by client) that are older than Redis 7 and get every script without its shebang. */
const legacyClients = new WeakSet<object>()

/** Whether this client's server took a script only without its flags line (Redis 6). */
export function isLegacyServer(redis: RedisClient): boolean {
  return legacyClients.has(redis)
}

/** The @rp error a script's failure becomes: a ScriptError names the script, others keep their kind. */
export function translateScriptError(name: string, error: unknown): Error {
  const mapped = toRpError(error, `script ${name}`)
  return mapped instanceof ScriptError
    ? new ScriptError(name, (error as Error).message ?? String(error), { cause: error })
    : mapped
}

/** The scripts each client has seen its server run, by the hash it sends (EVAL caches them there). */
const loaded = new WeakMap<object, Set<string>>()

/**
 * One round trip in the common case: EVALSHA, and EVAL only when the node answers NOSCRIPT (its
 * script cache was flushed, or it restarted, or a replica was promoted). EVAL also caches the
 * script on that node, so the next call is EVALSHA again. A client's first call of a script is
 * EVAL straight away: after a NOSCRIPT the EVAL would run behind whatever the client sent
 * meanwhile, and calls made in order must run in order. Rejections are already translated; this
 * never throws (whatever throws while the command is built rejects).
 */
export function runLua(
  redis: RedisClient,
  script: CompiledLua,
  keys: readonly string[],
  args: readonly ScriptArg[],
): Promise<unknown> {
  try {
    const argv = new Array<ScriptArg>(2 + keys.length + args.length)
    for (let i = 0; i < keys.length; i++) argv[2 + i] = keys[i]!
    for (let i = 0, at = 2 + keys.length; i < args.length; i++) argv[at + i] = args[i]!
    return send(redis, script, keys.length, argv)
  } catch (error) {
    return Promise.reject(translateScriptError(script.name, error))
  }
}

/**
 * runLua for a caller that built the command's arguments itself, at their final size: `argv[0]` and
 * `argv[1]` are left for the script's hash and the key count, then come `numKeys` keys, then the
 * arguments. The array becomes the command's; the caller must not use it again. A tick's batch
 * carries hundreds of arguments: an array grown by push, then copied once more with the hash in
 * front, gave V8 large short-lived arrays that it began to allocate straight in the old
 * generation, and every young collection then paused the calls in flight for 1.5 to 2 ms.
 */
export function runLuaArgv(
  redis: RedisClient,
  script: CompiledLua,
  numKeys: number,
  argv: ScriptArg[],
): Promise<unknown> {
  try {
    return send(redis, script, numKeys, argv)
  } catch (error) {
    return Promise.reject(translateScriptError(script.name, error))
  }
}

/**
 * EVALSHA or EVAL, always as a Command through sendCommand.
 * - With enableAutoPipelining this goes around ioredis's pipeline queue: it keeps one pipeline in
 *   flight per client and queues every later command until all of that one's replies are in, so a
 *   script call's Redis time and the client's time took turns (gcra 110k checks/s fell to 67k). A
 *   batch of a tick is already one command; the next one may leave while Redis runs it.
 * - The arguments are already flat, and a batch carries hundreds: the Command takes them as they
 *   are, where `redis.evalsha(...args)` copied them twice and ran Array#flat over them (a tenth of
 *   the client's time per rate-limit check). A keyPrefix needs the constructor's pass over the keys.
 */
function command(redis: RedisClient, name: 'evalsha' | 'eval', args: ScriptArg[]): Promise<unknown> {
  const options = (redis as { options?: { keyPrefix?: string; showFriendlyErrorStack?: boolean } }).options
  const keyPrefix = options?.keyPrefix
  const sent = new Command(name, keyPrefix ? args : [], {
    replyEncoding: 'utf8',
    keyPrefix,
    errorStack: options?.showFriendlyErrorStack ? new Error() : undefined,
  })
  if (!keyPrefix) {
    // The constructor turned [] into strings; these need the same (numbers, and Buffer mode).
    sent.args = args
    sent.stringifyArguments()
  }
  return (redis as unknown as { sendCommand(c: Command): Promise<unknown> }).sendCommand(sent)
}

function send(redis: RedisClient, script: CompiledLua, numKeys: number, argv: ScriptArg[]) {
  const legacy = legacyClients.has(redis)
  const name = script.name
  const sha = legacy ? script.legacySha : script.sha
  let seen = loaded.get(redis)
  if (!seen) {
    seen = new Set()
    loaded.set(redis, seen)
  }
  const known = seen
  // EVAL gets a copy: an EVALSHA already sent owns argv (ioredis turns its numbers into strings).
  const withSource = (source: string): ScriptArg[] => {
    const copy = argv.slice()
    copy[0] = source
    copy[1] = numKeys
    return copy
  }
  const evaluate = (): Promise<unknown> =>
    command(redis, 'eval', withSource(legacy ? script.body : script.lua))
      .then((reply) => {
        known.add(sha)
        return reply
      })
      .catch((evalError: unknown) => {
        if (legacy || !isShebangRejected(evalError)) throw translateScriptError(name, evalError)
        legacyClients.add(redis)
        return command(redis, 'eval', withSource(script.body))
          .then((reply) => {
            known.add(script.legacySha)
            return reply
          })
          .catch((legacyError: unknown) => {
            throw translateScriptError(name, legacyError)
          })
      })
  if (!known.has(sha)) return evaluate()
  argv[0] = sha
  argv[1] = numKeys
  // A plain promise chain, not an async function: this is every pattern's hottest path.
  return command(redis, 'evalsha', argv).catch((error: unknown) => {
    if (!isNoScript(error)) throw translateScriptError(name, error)
    return evaluate()
  })
}
