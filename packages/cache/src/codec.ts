import { deflateRawSync, inflateRawSync } from 'node:zlib'
import { InvalidArgumentError } from '@rp/core'

/** Turns values into strings and back; JSON by default. */
export interface Codec {
  encode(value: unknown): string
  decode(data: string): unknown
}

export const jsonCodec: Codec = {
  encode: (value) => JSON.stringify(value),
  decode: (data) => JSON.parse(data),
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
