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

  fence(resource: string): string {
    return this.#ks.key(resource, 'fence')
  }

  queue(resource: string): string {
    return this.#ks.key(resource, 'waiters')
  }

  /** Release notifications: the message is the owner id of the waiter woken. */
  channel(resource: string): string {
    return this.#ks.channel(resource, 'released')
  }
}
