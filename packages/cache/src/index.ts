import { keyspace } from '@rp/core'

/** Placeholder until the @rp/cache issue lands: the namespace its keys will live in. */
export const defaultKeyspace = keyspace('cache')
