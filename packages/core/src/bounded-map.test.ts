import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import { BoundedMap } from './bounded-map.js'
import { InvalidArgumentError } from './errors.js'

describe('BoundedMap', () => {
  it('drops the least recently used entry, where a read counts as a use', () => {
    const map = new BoundedMap<string, number>(2)
    map.set('a', 1)
    map.set('b', 2)
    expect(map.get('a')).toBe(1)
    map.set('c', 3)
    expect([map.get('a'), map.get('b'), map.get('c')]).toEqual([1, undefined, 3])
    expect(map.size).toBe(2)
  })

  it('behaves like an LRU model for any sequence of operations', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 5 }),
        fc.array(fc.tuple(fc.constantFrom('get', 'set', 'delete'), fc.integer({ min: 0, max: 7 })), {
          maxLength: 60,
        }),
        (max, ops) => {
          const map = new BoundedMap<number, number>(max)
          let model: Array<[number, number]> = []
          ops.forEach(([op, key], i) => {
            const at = model.findIndex(([k]) => k === key)
            if (op === 'get') {
              expect(map.get(key)).toBe(at >= 0 ? model[at]![1] : undefined)
              if (at >= 0) model = [...model.filter(([k]) => k !== key), model[at]!]
            } else if (op === 'set') {
              map.set(key, i)
              model = [...model.filter(([k]) => k !== key), [key, i]]
              if (model.length > max) model = model.slice(1)
            } else {
              expect(map.delete(key)).toBe(at >= 0)
              model = model.filter(([k]) => k !== key)
            }
            expect(map.size).toBe(model.length)
          })
        },
      ),
    )
  })

  it('refuses a bound that is not a positive integer', () => {
    for (const max of [0, -1, 1.5, Number.NaN])
      expect(() => new BoundedMap(max)).toThrow(InvalidArgumentError)
  })
})
