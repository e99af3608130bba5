import { EventEmitter } from 'node:events'
import { describe, expect, it } from 'vitest'
import { guarded } from './callbacks.js'
import { watchEvents } from './events.test-helpers.js'

describe('guarded', () => {
  it('turns a throwing or rejecting listener into an rp:event, never an uncaught error', async () => {
    await watchEvents(async ({ events: seen, uncaught }) => {
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
    })
  })
})
