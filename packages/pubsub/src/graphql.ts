import {
  InvalidArgumentError,
  promised,
  publishEvent,
  requireIntegerInRange,
  requireKnownOptions,
  requireOneOf,
  requireOptions,
} from '@rp/core/kit'
import { PubSubEngine as GraphQLPubSubEngine } from 'graphql-subscriptions'

/** graphql-subscriptions' iterator type, as its PubSubEngine declares it (not exported by name). */
type PubSubAsyncIterableIterator<T> = ReturnType<
  typeof GraphQLPubSubEngine.prototype.asyncIterableIterator<T>
>

import type { PubSub, Subscription } from './pubsub.js'
import { BoundedQueue, type OverflowPolicy } from './queue.js'

export interface RedisPubSubEngineOptions {
  /** The bus to publish and subscribe on (its prefix, codec, sequencing, sharding). */
  pubsub: PubSub
  /** Most messages an iterator holds for a slow subscription; default 1000. */
  bufferSize?: number
  /** Beyond bufferSize; default `'drop-oldest'`. */
  overflow?: OverflowPolicy
}

/**
 * A graphql-subscriptions PubSubEngine on @rp/pubsub: `asyncIterableIterator` is bounded (unlike
 * graphql-redis-subscriptions'), an undecodable message is reported instead of delivered raw, and
 * resubscription after a reconnect is visible on the bus's events.
 */
export class RedisPubSubEngine extends GraphQLPubSubEngine {
  readonly #bus: PubSub
  readonly #bufferSize: number
  readonly #overflow: OverflowPolicy
  readonly #subscriptions = new Map<number, Promise<Subscription>>()
  #next = 0

  constructor(options: RedisPubSubEngineOptions) {
    super()
    const o = requireOptions('options', options)
    requireKnownOptions('options', o, ['pubsub', 'bufferSize', 'overflow'])
    if (!o.pubsub || typeof (o.pubsub as { subscribe?: unknown }).subscribe !== 'function')
      throw new InvalidArgumentError('pubsub', 'must be a PubSub from @rp/pubsub')
    this.#bus = o.pubsub
    this.#bufferSize = requireIntegerInRange('bufferSize', o.bufferSize ?? 1_000, 1, 10_000_000)
    this.#overflow = requireOneOf('overflow', o.overflow ?? 'drop-oldest', [
      'drop-oldest',
      'drop-newest',
      'error',
    ] as const)
  }

  override publish(triggerName: string, payload: unknown): Promise<void> {
    return promised(async () => {
      await this.#bus.publish(triggerName, payload)
    })
  }

  override subscribe(triggerName: string, onMessage: (payload: unknown) => void): Promise<number> {
    return promised(async () => {
      const id = ++this.#next
      const subscription = this.#bus.subscribe(triggerName, (message) => onMessage(message))
      this.#subscriptions.set(id, subscription)
      try {
        await subscription
      } catch (error) {
        this.#subscriptions.delete(id)
        throw error
      }
      return id
    })
  }

  override unsubscribe(subId: number): void {
    const subscription = this.#subscriptions.get(subId)
    this.#subscriptions.delete(subId)
    subscription?.then((s) => s.unsubscribe()).catch(() => {})
  }

  /** One bounded iterator over every trigger; return() unsubscribes them all. */
  override asyncIterableIterator<T>(triggers: string | readonly string[]): PubSubAsyncIterableIterator<T> {
    if (typeof triggers !== 'string' && !Array.isArray(triggers))
      throw new InvalidArgumentError('triggers', 'must be a channel name or an array of them')
    const names = typeof triggers === 'string' ? [triggers] : [...triggers]
    if (names.length === 0) throw new InvalidArgumentError('triggers', 'must name at least one channel')
    const queue = new BoundedQueue<T>(this.#bufferSize, this.#overflow, (dropped) =>
      publishEvent({
        package: 'pubsub',
        event: 'overflow',
        channel: names.join(','),
        policy: this.#overflow,
        dropped,
      }),
    )
    const started = names.map((name) => this.subscribe(name, (payload) => queue.push(payload as T)))
    const ids = Promise.all(started)
    // Each trigger that did subscribe is let go, also when another one failed.
    const release = () => {
      for (const id of started) id.then((subId) => this.unsubscribe(subId)).catch(() => {})
    }
    const stop = () => {
      queue.end()
      release()
    }
    ids.catch((error: unknown) => {
      // for await does not call return() when next() rejects: nothing would let them go.
      queue.fail(error)
      release()
    })
    const iterator = {
      next: async (): Promise<IteratorResult<T>> => {
        await ids.catch(() => {})
        return queue.next()
      },
      return: async (): Promise<IteratorResult<T>> => {
        stop()
        return { done: true, value: undefined }
      },
      throw: async (error: unknown): Promise<never> => {
        stop()
        throw error
      },
      [Symbol.asyncIterator]() {
        return iterator
      },
    }
    // graphql-subscriptions types its iterator as its own class; any async iterator works in its place.
    return iterator as unknown as PubSubAsyncIterableIterator<T>
  }
}

export { RedisPubSubEngine as PubSubEngine }
