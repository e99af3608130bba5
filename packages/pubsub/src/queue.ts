import { RpError } from '@rp/core/kit'

export type OverflowPolicy = 'drop-oldest' | 'drop-newest' | 'error'

/** A message arrived while the iterator's buffer was full, under `overflow: 'error'`. */
export class BufferOverflowError extends RpError {
  readonly bufferSize: number
  constructor(bufferSize: number) {
    super(
      'RP_BUFFER_OVERFLOW',
      `the iterator's buffer of ${bufferSize} messages overflowed: the consumer is too slow`,
    )
    this.bufferSize = bufferSize
  }
}

/**
 * The bounded buffer behind iterate(): at most `size` items; beyond that the policy drops the oldest,
 * drops the newest, or fails the iterator. A ring buffer, so a full queue costs O(1) per message.
 */
export class BoundedQueue<T> {
  readonly #items: Array<T | undefined>
  #head = 0
  #length = 0
  /** next() calls waiting for an item, oldest first: each gets its own item, in order. */
  readonly #waiting: Array<{
    resolve: (result: IteratorResult<T>) => void
    reject: (error: unknown) => void
  }> = []
  #error: unknown = null
  #ended = false

  constructor(
    readonly size: number,
    readonly policy: OverflowPolicy,
    readonly onOverflow: (dropped: number) => void,
  ) {
    this.#items = new Array(size)
  }

  get length(): number {
    return this.#length
  }

  push(item: T): void {
    if (this.#ended || this.#error) return
    const waiter = this.#waiting.shift()
    if (waiter) {
      waiter.resolve({ done: false, value: item })
      return
    }
    if (this.#length === this.size) {
      this.onOverflow(1)
      if (this.policy === 'drop-newest') return
      if (this.policy === 'error') {
        this.fail(new BufferOverflowError(this.size))
        return
      }
      this.#items[this.#head] = undefined
      this.#head = (this.#head + 1) % this.size
      this.#length--
    }
    this.#items[(this.#head + this.#length) % this.size] = item
    this.#length++
  }

  next(): Promise<IteratorResult<T>> {
    if (this.#length > 0) {
      const value = this.#items[this.#head] as T
      this.#items[this.#head] = undefined
      this.#head = (this.#head + 1) % this.size
      this.#length--
      return Promise.resolve({ done: false, value })
    }
    if (this.#error) return Promise.reject(this.#error)
    if (this.#ended) return Promise.resolve({ done: true, value: undefined })
    return new Promise((resolve, reject) => {
      this.#waiting.push({ resolve, reject })
    })
  }

  fail(error: unknown): void {
    if (this.#error || this.#ended) return
    this.#error = error
    this.#length = 0
    this.#items.fill(undefined)
    for (const waiter of this.#waiting.splice(0)) waiter.reject(error)
  }

  end(): void {
    this.#ended = true
    this.#length = 0
    this.#items.fill(undefined)
    for (const waiter of this.#waiting.splice(0)) waiter.resolve({ done: true, value: undefined })
  }
}
