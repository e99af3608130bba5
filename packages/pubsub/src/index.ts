import { keyspace } from '@rp/core/kit'

/** Placeholder until the @rp/pubsub issue lands: the namespace its keys will live in. */
export const defaultKeyspace = keyspace('pubsub')
