export { LockLostError, LockTimeoutError, RedlockQuorumError } from './errors.js'
export { Lock, type ReleaseOutcome } from './lock.js'
export {
  type AcquireOptions,
  LockManager,
  type LockManagerEvents,
  type LockManagerOptions,
} from './lock-manager.js'
export { ReadWriteLock, type ReadWriteLockOptions, type RwHold } from './read-write-lock.js'
export { Redlock, type RedlockLock, type RedlockOptions } from './redlock.js'
export { type Permit, Semaphore, type SemaphoreOptions } from './semaphore.js'
