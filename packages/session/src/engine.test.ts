import fc from 'fast-check'
import { expect, it } from 'vitest'
import { fieldName, splitJsonObject } from './engine.js'

it('splitJsonObject gives back each stored field of a spliced JSON object, byte for byte', () => {
  fc.assert(
    fc.property(fc.dictionary(fc.string(), fc.jsonValue()), (data) => {
      // What the read script builds: '{' .. name .. ':' .. value, … '}' from the stored fields.
      const stored = new Map(Object.entries(data).map(([k, v]) => [fieldName(k), JSON.stringify(v)]))
      const text = `{${[...stored].map(([name, value]) => `${name.slice(1)}:${value}`).join(',')}}`
      expect(splitJsonObject(text)).toEqual(stored)
    }),
    { numRuns: 500 },
  )
})
