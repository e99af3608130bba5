import { createHash } from 'node:crypto'
import type { RedisClient } from './client.js'
import { InvalidArgumentError, ScriptError, toRpError } from './errors.js'

export type ScriptArg = string | number | Buffer

export interface ScriptDefinition<Reply> {
  /** Stable, unique name, e.g. `ratelimit.gcra`; shows in errors and instrumentation. */
  name: string
  /**
   * How many KEYS the script takes; every call is checked against it. `'variadic'` for scripts
   * that take any number (e.g. one pair of keys per policy); they still must share one slot.
   */
  keys: number | 'variadic'
  lua: string
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
   * script on that node, so the next call is EVALSHA again.
   */
  run(redis: RedisClient, keys: readonly string[], args?: readonly ScriptArg[]): Promise<Reply>
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

function translate(name: string, error: unknown): Error {
  const mapped = toRpError(error, `script ${name}`)
  return mapped instanceof ScriptError
    ? new ScriptError(name, (error as Error).message ?? String(error), { cause: error })
    : mapped
}

/** Declares a named Lua script once; packages call `run` on any client, standalone or cluster. */
export function defineScript<Reply = unknown>(definition: ScriptDefinition<Reply>): Script<Reply> {
  const { name, keys: keyCount } = definition
  const body = definition.lua
  const lua = `#!lua${definition.flags?.length ? ` flags=${definition.flags.join(',')}` : ''}\n${body}`
  if (keyCount !== 'variadic' && (!Number.isInteger(keyCount) || keyCount < 0)) {
    throw new InvalidArgumentError('keys', `script ${name}: must be an integer >= 0 or 'variadic'`)
  }
  const sha = createHash('sha1').update(lua).digest('hex')
  const legacySha = createHash('sha1').update(body).digest('hex')
  const decode = definition.decode ?? ((raw: unknown) => raw as Reply)
  return {
    name,
    keys: keyCount,
    lua,
    sha,
    run(redis, keys, args = []) {
      if (keyCount !== 'variadic' && keys.length !== keyCount) {
        return Promise.reject(
          new InvalidArgumentError('keys', `script ${name} takes ${keyCount} keys, got ${keys.length}`),
        )
      }
      const numKeys = keys.length
      const legacy = legacyClients.has(redis)
      // A plain promise chain, not an async function: this is every pattern's hottest path.
      return redis
        .evalsha(legacy ? legacySha : sha, numKeys, ...keys, ...args)
        .then(decode, (error: unknown) => {
          if (!isNoScript(error)) throw translate(name, error)
          return redis
            .eval(legacy ? body : lua, numKeys, ...keys, ...args)
            .then(decode, (evalError: unknown) => {
              if (legacy || !isShebangRejected(evalError)) throw translate(name, evalError)
              legacyClients.add(redis)
              return redis.eval(body, numKeys, ...keys, ...args).then(decode, (legacyError: unknown) => {
                throw translate(name, legacyError)
              })
            })
        })
    },
  }
}
