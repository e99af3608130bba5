import { subscribe, unsubscribe } from 'node:diagnostics_channel'
import { expect, it } from 'vitest'
import { instrument, OPERATION_CHANNEL, type OperationEvent } from './instrumentation.js'

it('publishes name, duration and outcome for each operation', async () => {
  const seen: OperationEvent[] = []
  const listener = (message: unknown) => seen.push(message as OperationEvent)
  subscribe(OPERATION_CHANNEL, listener)
  try {
    const value = await instrument(
      { package: 'test', operation: 'op' },
      async () => 7,
      (r) => (r > 5 ? 'big' : 'small'),
    )
    expect(value).toBe(7)
    await expect(
      instrument({ package: 'test', operation: 'fails' }, async () => Promise.reject(new Error('x'))),
    ).rejects.toThrow('x')
  } finally {
    unsubscribe(OPERATION_CHANNEL, listener)
  }
  expect(seen.map((e) => [e.operation, e.outcome])).toEqual([
    ['op', 'big'],
    ['fails', 'error'],
  ])
  expect(seen[0]!.durationMs).toBeGreaterThanOrEqual(0)
  expect((seen[1]!.error as Error).message).toBe('x')
})
