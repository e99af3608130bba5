export { Cache, type CacheStats, type GetOrSetOptions, type SetOptions } from './cache.js'
export { type Codec, jsonCodec } from './codec.js'
export type { CacheEvent } from './events.js'
export type { CacheOptions, CacheSettings } from './options.js'
