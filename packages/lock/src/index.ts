import { keyspace } from '@rp/core'

/** Placeholder until the @rp/lock issue lands: the namespace its keys will live in. */
export const defaultKeyspace = keyspace('lock')
