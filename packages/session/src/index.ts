export type { SessionCodec } from './codec.js'
export { SessionConflictError, SessionTooLargeError } from './errors.js'
export type { SessionEvent } from './events.js'
export type { SessionFailurePolicy, SessionStoreOptions } from './options.js'
export type { Session, SessionDevice, SessionMeta } from './session.js'
export {
  type DestroyAllOptions,
  type SessionCreateOptions,
  SessionStore,
  type SessionUpdateOptions,
  type SessionUpdater,
} from './store.js'
