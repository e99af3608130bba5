import { InvalidArgumentError, toJson } from '@rp/core/kit'

/** Turns a message into what Redis carries, and back (synchronously: dispatch keeps publish order). */
export interface PubSubCodec {
  encode(value: unknown): string | Buffer
  decode(payload: Buffer): unknown
}

/** JSON for values; a Buffer passes through untouched (see the envelope's type byte). */
export const jsonCodec: PubSubCodec = {
  encode: (value) => toJson('message', value),
  decode: (payload) => JSON.parse(payload.toString('utf8')),
}

const JSON_TYPE = 0x6a // 'j'
const BINARY_TYPE = 0x62 // 'b'
const PACK_TYPE = 0x61 // 'a'
const COLON = 0x3a

/**
 * The wire form of a message: a type byte ('j' codec output, 'b' a Buffer passed through), the
 * sequence number in decimal when the channel is sequenced, ':' and the payload. A message another
 * client PUBLISHed by hand does not parse, and is reported instead of delivered as something else.
 */
export function encodeEnvelope(codec: PubSubCodec, value: unknown): { head: string; body: Buffer | string } {
  if (Buffer.isBuffer(value)) return { head: 'b', body: value }
  let encoded: string | Buffer
  try {
    encoded = codec.encode(value)
  } catch (error) {
    if (error instanceof InvalidArgumentError) throw error
    throw new InvalidArgumentError('message', `the codec could not encode it: ${String(error)}`)
  }
  if (typeof encoded !== 'string' && !Buffer.isBuffer(encoded))
    throw new InvalidArgumentError('codec.encode', 'must return a string or a Buffer')
  return { head: 'j', body: encoded }
}

/** The whole wire message: text stays text (no copy into a Buffer), binary is concatenated. */
export function wire(envelope: { head: string; body: Buffer | string }, seq?: number): Buffer | string {
  const head = `${envelope.head}${seq ?? ''}:`
  return typeof envelope.body === 'string'
    ? head + envelope.body
    : Buffer.concat([Buffer.from(head), envelope.body])
}

/** Most messages in one pack: bounds the frame every subscriber must parse and dispatch at once. */
export const PACK_MESSAGES = 256

/**
 * Several JSON messages of one channel as one wire message: 'a:' and a JSON array of the codec's
 * texts. Only JSON texts join into valid JSON, so only the default codec's output is packed.
 */
export function packWire(texts: readonly string[]): string {
  return `a:[${texts.join(',')}]`
}

export interface Decoded {
  value: unknown
  seq: number | undefined
  /** A pack ('a'): its messages, in publish order; `value` is then undefined. */
  values?: unknown[]
}

/** Parses a wire message; throws for anything this package did not write. */
export function decodeEnvelope(codec: PubSubCodec, raw: Buffer): Decoded {
  const type = raw[0]
  if (type === PACK_TYPE && raw[1] === COLON && codec === jsonCodec) {
    const values = JSON.parse(raw.toString('utf8', 2)) as unknown
    // A publisher packs 2 to PACK_MESSAGES messages; anything else was not written by one.
    if (!Array.isArray(values) || values.length < 2 || values.length > PACK_MESSAGES)
      throw new Error('not an @rp/pubsub message')
    return { value: undefined, seq: undefined, values }
  }
  if (type !== JSON_TYPE && type !== BINARY_TYPE) throw new Error('not an @rp/pubsub message')
  const colon = raw.indexOf(COLON, 1)
  if (colon < 0 || colon > 20) throw new Error('not an @rp/pubsub message')
  const digits = raw.subarray(1, colon).toString('latin1')
  if (digits !== '' && !/^\d+$/.test(digits)) throw new Error('not an @rp/pubsub message')
  const body = raw.subarray(colon + 1)
  return {
    value: type === BINARY_TYPE ? Buffer.from(body) : codec.decode(body),
    seq: digits === '' ? undefined : Number(digits),
  }
}
