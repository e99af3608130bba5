import { requirePositiveInteger } from './validate.js'

/**
 * A Map of at most `max` entries that drops the least recently used one: what an in-process
 * memo of a pattern needs (denied keys, a fallback's counters). A Map keeps insertion order, so
 * re-inserting on read is the whole LRU; a dependency for this would be most of a package's size.
 */
export class BoundedMap<K, V> {
  readonly #map = new Map<K, V>()
  readonly #max: number

  /** @throws InvalidArgumentError when max is not a positive integer. */
  constructor(max: number) {
    this.#max = requirePositiveInteger('max', max)
  }

  get size(): number {
    return this.#map.size
  }

  get(key: K): V | undefined {
    const value = this.#map.get(key)
    if (value !== undefined) {
      this.#map.delete(key)
      this.#map.set(key, value)
    }
    return value
  }

  set(key: K, value: V): void {
    this.#map.delete(key)
    this.#map.set(key, value)
    if (this.#map.size > this.#max)
      for (const [oldest] of this.#map) {
        this.#map.delete(oldest)
        break
      }
  }

  delete(key: K): boolean {
    return this.#map.delete(key)
  }

  clear(): void {
    this.#map.clear()
  }
}
