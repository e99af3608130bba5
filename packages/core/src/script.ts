import { createHash } from 'node:crypto'
import type { RedisClient } from './client.js'
import { InvalidArgumentError, isConnectionError, RedisUnavailableError, ScriptError } from './errors.js'

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

function translate(name: string, error: unknown): Error {
  if (isConnectionError(error)) {
    return new RedisUnavailableError(`script ${name}: ${(error as Error).message}`, { cause: error })
  }
  return new ScriptError(name, error instanceof Error ? error.message : String(error), { cause: error })
}

/** Declares a named Lua script once; packages call `run` on any client, standalone or cluster. */
export function defineScript<Reply = unknown>(definition: ScriptDefinition<Reply>): Script<Reply> {
  const { name, keys: keyCount, lua } = definition
  if (keyCount !== 'variadic' && (!Number.isInteger(keyCount) || keyCount < 0)) {
    throw new InvalidArgumentError('keys', `script ${name}: must be an integer >= 0 or 'variadic'`)
  }
  const sha = createHash('sha1').update(lua).digest('hex')
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
      // A plain promise chain, not an async function: this is every pattern's hottest path.
      return redis.evalsha(sha, numKeys, ...keys, ...args).then(decode, (error: unknown) => {
        if (!isNoScript(error)) throw translate(name, error)
        return redis.eval(lua, numKeys, ...keys, ...args).then(decode, (evalError: unknown) => {
          throw translate(name, evalError)
        })
      })
    },
  }
}
