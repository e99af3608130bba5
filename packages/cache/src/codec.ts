import { deflateRawSync, inflateRawSync } from 'node:zlib'
import { InvalidArgumentError } from '@rp/core/kit'

/** Turns values into strings and back; JSON by default. */
export interface Codec {
  encode(value: unknown): string
  decode(data: string): unknown
}

/**
 * JSON, strictly: a value is accepted only if it comes back from JSON.parse exactly as it went in.
 * A Map, a Set, a Date, a class instance, NaN, Infinity, a BigInt, undefined inside an object or
 * array, or a cycle is refused (InvalidArgumentError), never silently turned into `{}`, a string
 * or null. Use a codec of your own (e.g. superjson, msgpack) for richer values.
 */
export const jsonCodec: Codec = {
  encode: (value) => {
    assertJsonExact(value, '$', [])
    return JSON.stringify(value)
  },
  decode: (data) => JSON.parse(data),
}

function assertJsonExact(value: unknown, path: string, stack: object[]): void {
  switch (typeof value) {
    case 'string':
    case 'boolean':
      return
    case 'number':
      if (!Number.isFinite(value)) throw new TypeError(`${path} is ${value}, which JSON stores as null`)
      return
    case 'object': {
      if (value === null) return
      if (stack.includes(value)) throw new TypeError(`${path} is a circular reference`)
      const proto = Object.getPrototypeOf(value)
      if (Array.isArray(value)) {
        stack.push(value)
        for (let i = 0; i < value.length; i++) {
          if (!(i in value) || value[i] === undefined)
            throw new TypeError(`${path}[${i}] is undefined, which JSON stores as null`)
          assertJsonExact(value[i], `${path}[${i}]`, stack)
        }
        stack.pop()
        return
      }
      if (proto !== Object.prototype && proto !== null) {
        const kind = (value as object).constructor?.name ?? 'object'
        throw new TypeError(`${path} is a ${kind}, which JSON does not round-trip`)
      }
      if (Object.getOwnPropertySymbols(value).length > 0)
        throw new TypeError(`${path} has symbol keys, which JSON drops`)
      stack.push(value)
      for (const [k, v] of Object.entries(value)) {
        if (v === undefined) throw new TypeError(`${path}.${k} is undefined, which JSON drops`)
        assertJsonExact(v, `${path}.${k}`, stack)
      }
      stack.pop()
      return
    }
    default:
      throw new TypeError(`${path} is a ${typeof value}, which JSON cannot store`)
  }
}

// Envelope format version, first character of the flags field: data in an unknown format reads as a miss.
const FORMAT = '1'
const COMPRESSED = 'z'
const NEGATIVE = 'n'

export interface Encoded {
  data: string
  flags: string
}

export interface Decoded {
  negative: boolean
  value: unknown
}

/** Encodes a value (or a "not found" marker) with optional compression above `thresholdBytes`. */
export function encodeEntry(
  codec: Codec,
  key: string,
  value: unknown,
  negative: boolean,
  thresholdBytes: number | null,
): Encoded {
  if (negative) return { data: '', flags: FORMAT + NEGATIVE }
  let data: string
  try {
    data = codec.encode(value)
  } catch (error) {
    throw new InvalidArgumentError(
      'value',
      `cannot encode the value for key ${JSON.stringify(key)}: ${(error as Error).message}`,
    )
  }
  if (typeof data !== 'string') {
    throw new InvalidArgumentError('value', `the codec produced no string for key ${JSON.stringify(key)}`)
  }
  if (thresholdBytes !== null && Buffer.byteLength(data) > thresholdBytes) {
    return { data: deflateRawSync(data).toString('base64'), flags: FORMAT + COMPRESSED }
  }
  return { data, flags: FORMAT }
}

/** Throws on anything it cannot read; the cache turns that into a miss and an event. */
export function decodeEntry(codec: Codec, data: string, flags: string): Decoded {
  if (flags[0] !== FORMAT) throw new Error(`unknown envelope format ${JSON.stringify(flags)}`)
  if (flags.includes(NEGATIVE)) return { negative: true, value: undefined }
  const text = flags.includes(COMPRESSED) ? inflateRawSync(Buffer.from(data, 'base64')).toString() : data
  return { negative: false, value: codec.decode(text) }
}
