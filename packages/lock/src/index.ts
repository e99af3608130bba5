export { LockLostError, LockTimeoutError, RedlockQuorumError } from './errors.js'
export { Lock } from './lock.js'
export {
  type LockAcquireOptions,
  LockManager,
  type LockManagerEvents,
  type LockManagerOptions,
} from './lock-manager.js'
export {
  ReadWriteLock,
  type ReadWriteLockOptions,
  type RwAcquireOptions,
  type RwHold,
} from './read-write-lock.js'
export { Redlock, type RedlockLock, type RedlockOptions } from './redlock.js'
export { type Permit, Semaphore, type SemaphoreAcquireOptions, type SemaphoreOptions } from './semaphore.js'
