import { type Keyspace, keyspace } from '@rp/core/kit'

/** Key layout of LockManager: every key of a resource shares the resource as hash tag. */
export class LockKeys {
  readonly #ks: Keyspace

  constructor(prefix: string) {
    this.#ks = keyspace(prefix)
  }

  lock(resource: string): string {
    return this.#ks.key(resource)
  }

  /*
   * The others are the lock key plus a constant part (key(resource, 'fence') is key(resource) +
   * ':fence'), so a call that needs several escapes the resource once: the `lock` it passes.
   */
  fence(resource: string, lock = this.lock(resource)): string {
    return `${lock}:fence`
  }

  queue(resource: string, lock = this.lock(resource)): string {
    return `${lock}:waiters`
  }

  /** Release notifications: the message is the owner id of the waiter woken. */
  channel(resource: string, lock = this.lock(resource)): string {
    return `${lock}:released`
  }
}
