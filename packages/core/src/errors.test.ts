import { describe, expect, it } from 'vitest'
import {
  InvalidArgumentError,
  isConnectionError,
  isRpError,
  RedisOutOfMemoryError,
  RedisUnavailableError,
  RpError,
  ScriptError,
  TimeoutError,
  toRpError,
} from './errors.js'

describe('errors', () => {
  it('are recognised across two installed copies of @rp/core, by marker and code', () => {
    // What a second copy of the module would build: same marker, a different class.
    class ForeignRpError extends Error {
      readonly code = 'RP_REDIS_UNAVAILABLE'
      constructor() {
        super('from another copy')
        Object.defineProperty(this, Symbol.for('@rp/core.error'), { value: true })
      }
    }
    const foreign = new ForeignRpError()
    expect(foreign instanceof RpError).toBe(false)
    expect(RpError.isInstance(foreign)).toBe(true)
    expect(isRpError(foreign, 'RP_REDIS_UNAVAILABLE')).toBe(true)
    expect(isRpError(foreign, 'RP_TIMEOUT')).toBe(false)
    expect(isConnectionError(foreign)).toBe(true)
    expect(isRpError(new Error('plain'))).toBe(false)
    expect(isRpError(new InvalidArgumentError('x', 'bad'), 'RP_INVALID_ARGUMENT')).toBe(true)
  })

  it('toRpError maps every rejection to an @rp error with the original as cause', () => {
    const cases: Array<[unknown, new (...args: never[]) => RpError]> = [
      [new Error('connect ECONNREFUSED 127.0.0.1:1'), RedisUnavailableError],
      [new Error('WRONGPASS invalid username-password pair or user is disabled.'), RedisUnavailableError],
      [new Error('NOAUTH Authentication required.'), RedisUnavailableError],
      [new Error("OOM command not allowed when used memory > 'maxmemory'."), RedisOutOfMemoryError],
      [new Error('WRONGTYPE Operation against a key holding the wrong kind of value'), ScriptError],
      // Up, but unable to serve the call for a while: not the key's fault.
      [new Error("READONLY You can't write against a read only replica."), RedisUnavailableError],
      [
        new Error('BUSY Redis is busy running a script. You can only call SCRIPT KILL or SHUTDOWN NOSAVE.'),
        RedisUnavailableError,
      ],
      [
        new Error('MISCONF Redis is configured to save RDB snapshots, but it is unable to persist.'),
        RedisUnavailableError,
      ],
      [new Error('NOREPLICAS Not enough good replicas to write.'), RedisUnavailableError],
      [new Error('Too many Cluster redirections. Last error: MOVED 1 127.0.0.1:7001'), RedisUnavailableError],
      [new Error('BUSYGROUP Consumer Group name already exists'), ScriptError],
      ['a string', ScriptError],
    ]
    for (const [raw, type] of cases) {
      const mapped = toRpError(raw, 'op')
      expect(mapped).toBeInstanceOf(type)
      expect(mapped.cause).toBe(raw)
    }
    const timeout = new TimeoutError('op', 5)
    expect(toRpError(timeout, 'op')).toBe(timeout)
  })
})
