import { keyspace } from '@rp/core/kit'

/** Placeholder until the @rp/session issue lands: the namespace its keys will live in. */
export const defaultKeyspace = keyspace('session')
