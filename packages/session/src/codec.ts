/**
 * Turns one top-level field of session data into the string Redis stores, and back. Either side
 * may be async (encryption, compression). The default is JSON, and data it cannot encode without
 * loss (BigInt, functions, cycles, NaN) is refused with an InvalidArgumentError before any I/O.
 */
export interface SessionCodec {
  encode(value: unknown): string | Promise<string>
  decode(text: string): unknown
}

export const jsonCodec: SessionCodec = {
  encode: (value) => JSON.stringify(value),
  decode: (text) => JSON.parse(text),
}
