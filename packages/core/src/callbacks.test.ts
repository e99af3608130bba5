import { subscribe, unsubscribe } from 'node:diagnostics_channel'
import { EventEmitter } from 'node:events'
import { describe, expect, it } from 'vitest'
import { guarded } from './callbacks.js'
import { EVENT_CHANNEL, type RpEvent } from './instrumentation.js'

describe('guarded', () => {
  it('turns a throwing or rejecting listener into an rp:event, never an uncaught error', async () => {
    const seen: RpEvent[] = []
    const onEvent = (e: unknown) => seen.push(e as RpEvent)
    subscribe(EVENT_CHANNEL, onEvent)
    const uncaught: unknown[] = []
    const onUncaught = (e: unknown) => uncaught.push(e)
    process.on('uncaughtException', onUncaught)
    process.on('unhandledRejection', onUncaught)
    try {
      const emitter = new EventEmitter()
      emitter.on(
        'x',
        guarded('test', 'x-sync', () => {
          throw new URIError('URI malformed')
        }),
      )
      emitter.on(
        'y',
        guarded('test', 'y-async', async () => {
          throw new Error('later')
        }),
      )
      expect(() => emitter.emit('x')).not.toThrow()
      emitter.emit('y')
      await new Promise((r) => setTimeout(r, 20))
      expect(uncaught).toEqual([])
      expect(seen.map((e) => e.callback)).toEqual(['x-sync', 'y-async'])
      expect(seen[0]!.event).toBe('callback-error')
      expect(seen[0]!.error).toBeInstanceOf(URIError)
    } finally {
      unsubscribe(EVENT_CHANNEL, onEvent)
      process.off('uncaughtException', onUncaught)
      process.off('unhandledRejection', onUncaught)
    }
  })
})
