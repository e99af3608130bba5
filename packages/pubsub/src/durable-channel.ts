import { randomUUID } from 'node:crypto'
import {
  assertUsableClient,
  type BatchOption,
  blockingClient,
  delay,
  fullJitterBackoff,
  InvalidArgumentError,
  instrument,
  keyspace,
  promised,
  publishEvent,
  type RedisClient,
  RedisGuard,
  requireBoolean,
  requireFunction,
  requireIntegerInRange,
  requireKnownOptions,
  requireNonEmptyString,
  requireOneOf,
  requireOptions,
  requireTimeoutMs,
  requireWellFormedString,
  shutdown,
  toRpError,
  withTimeout,
} from '@rp/core/kit'
import { encodeEnvelope, jsonCodec, type PubSubCodec } from './envelope.js'
import { deadLetterScript, retryScript } from './scripts.js'

export interface DurableChannelOptions extends BatchOption {
  redis: RedisClient
  /** Key namespace; default `dc`. */
  prefix?: string
  /** The channel's name: its hash tag (one channel is one cluster slot). */
  name: string
  /** Entries the stream keeps, approximately (MAXLEN ~); the same cap for dead letters. Default 100,000. */
  maxLen?: number
  codec?: PubSubCodec
  /** Bound on one Redis call (not on the blocking read); default 1000. */
  timeoutMs?: number
}

export interface ConsumeOptions {
  /** Handlers running at once in this worker; default 1. */
  concurrency?: number
  /** An entry not acknowledged this long after delivery goes to another consumer; default 30 s. */
  visibilityTimeoutMs?: number
  /** Deliveries before an entry moves to the dead-letter stream; default 5. */
  maxDeliveries?: number
  /** Where a new group starts: `'start'` (default: everything the stream retains) or `'now'`. */
  startAt?: 'start' | 'now'
  /** This consumer's name in the group; default a random one per worker. */
  consumer?: string
  /** Longest one blocking read waits; default 2000. */
  blockMs?: number
}

export interface DeliveryMeta {
  readonly id: string
  /** 1 on the first delivery; more when an earlier one was not acknowledged in time. */
  readonly deliveries: number
}

export interface Worker {
  /**
   * Stops reading, lets the handlers in flight finish and acknowledges them, waiting at most
   * `graceMs` (default 10 s); what is still running then stays pending for another consumer.
   */
  close(options?: { graceMs?: number }): Promise<void>
}

export interface DeadLetter {
  /** Its id in the dead-letter stream (retry and purge take it). */
  readonly id: string
  /** Its id in the channel's stream when it failed. */
  readonly originalId: string
  readonly message: unknown
  readonly group: string
  readonly deliveries: number
}

export interface DurableChannelStats {
  readonly length: number
  readonly deadLettered: number
  readonly groups: ReadonlyArray<{ name: string; consumers: number; pending: number; lag: number | null }>
}

const OPTIONS = ['redis', 'prefix', 'name', 'maxLen', 'codec', 'timeoutMs', 'batch']

/**
 * At-least-once work distribution on a Redis Stream: consumer groups keep their offsets in Redis,
 * an entry a consumer did not acknowledge in time goes to another (XAUTOCLAIM), and one that
 * failed maxDeliveries times moves to a dead-letter stream, atomically with its XACK.
 */
export class DurableChannel<T = unknown> {
  readonly #redis: RedisClient
  readonly #guard: RedisGuard
  readonly #stream: string
  readonly #dlq: string
  readonly #maxLen: number
  readonly #codec: PubSubCodec
  readonly #timeoutMs: number

  /** @throws InvalidArgumentError for a bad or unknown option. */
  constructor(options: DurableChannelOptions) {
    const o = requireOptions('options', options)
    requireKnownOptions('options', o, OPTIONS)
    this.#redis = assertUsableClient(o.redis)
    const keys = keyspace(requireNonEmptyString('prefix', o.prefix ?? 'dc'))
    const name = requireNonEmptyString('name', o.name)
    this.#stream = keys.key(name, 's')
    this.#dlq = keys.key(name, 'dlq')
    this.#maxLen = requireIntegerInRange('maxLen', o.maxLen ?? 100_000, 1, 2 ** 31)
    this.#codec = o.codec ?? jsonCodec
    requireFunction('codec.encode', this.#codec.encode)
    requireFunction('codec.decode', this.#codec.decode)
    this.#timeoutMs = requireTimeoutMs('timeoutMs', o.timeoutMs ?? 1_000)
    this.#guard = new RedisGuard(this.#redis, this.#timeoutMs, {
      batch: requireBoolean('batch', o.batch ?? true),
    })
  }

  #call<R>(operation: string, work: () => Promise<R>): Promise<R> {
    return instrument({ package: 'pubsub', operation: `durable.${operation}` }, () =>
      this.#guard.run(operation, work),
    )
  }

  /** Appends a message; resolves to its id once Redis has it. */
  publish(message: T): Promise<string> {
    return promised(async () => {
      const payload = toField(this.#codec, message)
      const id = await this.#call('publish', () =>
        this.#redis.xadd(this.#stream, 'MAXLEN', '~', this.#maxLen, '*', 'm', payload),
      )
      return id as string
    })
  }

  /** Runs `handler` for the group's entries until close(); acknowledges each when it resolves. */
  consume(
    group: string,
    handler: (message: T, meta: DeliveryMeta) => unknown,
    options?: ConsumeOptions,
  ): Worker {
    // Sent to Redis as they are: a lone surrogate would arrive as U+FFFD, another group.
    requireWellFormedString('group', group)
    requireFunction('handler', handler)
    const o = requireOptions('options', options)
    requireKnownOptions('options', o, [
      'concurrency',
      'visibilityTimeoutMs',
      'maxDeliveries',
      'startAt',
      'consumer',
      'blockMs',
    ])
    const settings = {
      concurrency: requireIntegerInRange('concurrency', o.concurrency ?? 1, 1, 10_000),
      visibilityTimeoutMs: requireTimeoutMs('visibilityTimeoutMs', o.visibilityTimeoutMs ?? 30_000),
      maxDeliveries: requireIntegerInRange('maxDeliveries', o.maxDeliveries ?? 5, 1, 1_000_000),
      startAt: requireOneOf('startAt', o.startAt ?? 'start', ['start', 'now'] as const),
      consumer:
        o.consumer === undefined ? `c-${randomUUID()}` : requireWellFormedString('consumer', o.consumer),
      blockMs: requireIntegerInRange('blockMs', o.blockMs ?? 2_000, 1, 60_000),
    }
    const loop = new ConsumerLoop(
      this,
      group,
      handler as (message: unknown, meta: DeliveryMeta) => unknown,
      settings,
    )
    loop.start()
    return { close: (closeOptions) => loop.close(closeOptions) }
  }

  /** The dead-letter stream: what failed maxDeliveries times. */
  deadLetters(): {
    list(count?: number): Promise<DeadLetter[]>
    retry(id: string): Promise<string | null>
    purge(): Promise<number>
  } {
    return {
      list: (count = 100) =>
        promised(async () => {
          requireIntegerInRange('count', count, 1, 10_000)
          const entries = (await this.#call('deadLetters.list', () =>
            this.#redis.xrange(this.#dlq, '-', '+', 'COUNT', count),
          )) as Array<[string, string[]]>
          return entries.map(([id, fields]) => {
            const f = fieldsOf(fields)
            let message: unknown
            try {
              message = fromField(this.#codec, f.m)
            } catch {
              message = f.m
            }
            return {
              id,
              originalId: f.id ?? '',
              message,
              group: f.group ?? '',
              deliveries: Number(f.deliveries ?? 0),
            }
          })
        }),
      retry: (id: string) =>
        promised(async () => {
          // A whole entry id, as list() gives it: XRANGE reads '1000' as every entry of that ms.
          requireNonEmptyString('id', id)
          if (!STREAM_ID.test(id))
            throw new InvalidArgumentError(
              'id',
              `must be a dead letter's id as list() gives it (ms-seq), got ${JSON.stringify(id.slice(0, 40))}`,
            )
          return this.#call('deadLetters.retry', () =>
            retryScript.run(
              this.#redis,
              [this.#stream, this.#dlq],
              [id, this.#maxLen],
              this.#guard.scriptOptions,
            ),
          )
        }),
      purge: () =>
        promised(async () => {
          const length = await this.#call('deadLetters.purge', () => this.#redis.xlen(this.#dlq))
          await this.#call('deadLetters.purge', () => this.#redis.del(this.#dlq))
          return length
        }),
    }
  }

  /** Length, dead letters, and per group: consumers, pending, and lag (entries not yet read). */
  stats(): Promise<DurableChannelStats> {
    return promised(async () => {
      const [length, deadLettered] = await Promise.all([
        this.#call('stats', () => this.#redis.xlen(this.#stream)),
        this.#call('stats', () => this.#redis.xlen(this.#dlq)),
      ])
      const raw = (await this.#call('stats', () => this.#redis.xinfo('GROUPS', this.#stream)).catch(
        (error: unknown) => {
          if (String((error as Error).message).includes('no such key')) return []
          throw error
        },
      )) as unknown[][]
      const groups = raw.map((entry) => {
        const f: Record<string, unknown> = {}
        for (let i = 0; i + 1 < entry.length; i += 2) f[String(entry[i])] = entry[i + 1]
        return {
          name: String(f.name),
          consumers: Number(f.consumers),
          pending: Number(f.pending),
          lag: f.lag === null || f.lag === undefined ? null : Number(f.lag),
        }
      })
      return { length, deadLettered, groups }
    })
  }

  /** @internal What the consumer loop needs. */
  get internals() {
    return {
      redis: this.#redis,
      stream: this.#stream,
      dlq: this.#dlq,
      maxLen: this.#maxLen,
      codec: this.#codec,
      timeoutMs: this.#timeoutMs,
      scriptOptions: this.#guard.scriptOptions,
      call: <R>(operation: string, work: () => Promise<R>) => this.#call(operation, work),
    }
  }
}

/**
 * A message as a stream field: 'j:' and the codec's output when it is text, 'c:' and the codec's
 * output in base64 when it is a Buffer (msgpack, protobuf: not UTF-8, which a text field would
 * mangle), or 'b:' and a Buffer message in base64 (stream replies come back as strings, so binary
 * travels encoded).
 */
function toField(codec: PubSubCodec, message: unknown): string {
  const { head, body } = encodeEnvelope(codec, message)
  if (head === 'b') return `b:${(body as Buffer).toString('base64')}`
  return typeof body === 'string' ? `j:${body}` : `c:${body.toString('base64')}`
}

function fromField(codec: PubSubCodec, field: string | undefined): unknown {
  if (field?.startsWith('b:')) return Buffer.from(field.slice(2), 'base64')
  if (field?.startsWith('j:')) return codec.decode(Buffer.from(field.slice(2), 'utf8'))
  if (field?.startsWith('c:')) return codec.decode(Buffer.from(field.slice(2), 'base64'))
  throw new Error('not an @rp/pubsub stream entry')
}

function fieldsOf(fields: readonly string[]): Record<string, string> {
  const f: Record<string, string> = {}
  for (let i = 0; i + 1 < fields.length; i += 2) f[fields[i]!] = fields[i + 1]!
  return f
}

/** A stream entry id in full: milliseconds, '-', sequence. */
const STREAM_ID = /^\d{1,20}-\d{1,20}$/

interface Settings {
  concurrency: number
  visibilityTimeoutMs: number
  maxDeliveries: number
  startAt: 'start' | 'now'
  consumer: string
  blockMs: number
}

/** One worker: a blocking reader, a claimer of stale entries, and at most `concurrency` handlers. */
class ConsumerLoop {
  readonly #channel: DurableChannel
  readonly #group: string
  readonly #handler: (message: unknown, meta: DeliveryMeta) => unknown
  readonly #s: Settings
  readonly #inFlight = new Set<Promise<void>>()
  readonly #stop = new AbortController()
  #reader: RedisClient | null = null
  #running: Promise<void> | null = null
  #lastClaim = 0
  /** Where the next XAUTOCLAIM scan of the pending list starts. */
  #claimFrom = '0-0'

  constructor(
    channel: DurableChannel,
    group: string,
    handler: (message: unknown, meta: DeliveryMeta) => unknown,
    settings: Settings,
  ) {
    this.#channel = channel
    this.#group = group
    this.#handler = handler
    this.#s = settings
  }

  start(): void {
    this.#running = this.#run().catch((error: unknown) =>
      publishEvent({ package: 'pubsub', event: 'consumer-stopped', group: this.#group, error }),
    )
  }

  async #run(): Promise<void> {
    const { redis, stream } = this.#channel.internals
    const backoff = fullJitterBackoff(100, 5_000)
    let failures = 0
    while (!this.#stop.signal.aborted) {
      try {
        await this.#createGroup(this.#s.startAt === 'now' ? '$' : '0')
        break
      } catch (error) {
        publishEvent({ package: 'pubsub', event: 'consumer-error', group: this.#group, error })
        await this.#pause(backoff(failures++))
      }
    }
    // close() during the group's creation: no reader, which nothing would close.
    if (this.#stop.signal.aborted) return
    this.#reader = blockingClient(redis)
    this.#reader.on('error', () => {})
    failures = 0
    // Whether the last failure was answered by creating the group again. A NOGROUP right after
    // that (a reader that sees another database than the client, or a group lost twice) backs
    // off before the next creation, instead of looping; a read that succeeds clears it.
    let recovering = false
    while (!this.#stop.signal.aborted) {
      try {
        await this.#claim()
        const free = this.#s.concurrency - this.#inFlight.size
        if (free <= 0) {
          await Promise.race(this.#inFlight)
          continue
        }
        const reply = (await this.#reader.xreadgroup(
          'GROUP',
          this.#group,
          this.#s.consumer,
          'COUNT',
          free,
          'BLOCK',
          this.#s.blockMs,
          'STREAMS',
          stream,
          '>',
        )) as Array<[string, Array<[string, string[]]>]> | null
        failures = 0
        recovering = false
        for (const [, entries] of reply ?? [])
          for (const [id, fields] of entries) this.#dispatch(id, fields, 1)
      } catch (error) {
        if (this.#stop.signal.aborted) break
        publishEvent({
          package: 'pubsub',
          event: 'consumer-error',
          group: this.#group,
          error: toRpError(error, 'consume'),
        })
        if (isNoGroup(error) && recovering) {
          recovering = false
          await this.#pause(backoff(failures++))
          continue
        }
        // The group is gone: Redis lost its data (a restart without persistence, a failover to a
        // replica that never had it, FLUSHALL) or it was destroyed. Reading would fail forever, so
        // it is created again, from the start of what the stream holds: nothing published since
        // the loss is skipped (what survived may be delivered again: at-least-once).
        if (isNoGroup(error)) {
          // Another consumer of the group may have created it first (false): then no event. A
          // creation that failed (the client still reconnecting) is tried again after the pause.
          const created = await this.#createGroup('0').catch(() => null)
          if (created) publishEvent({ package: 'pubsub', event: 'group-recreated', group: this.#group })
          if (created !== null) {
            recovering = true
            continue
          }
        }
        await this.#pause(backoff(failures++))
      }
    }
  }

  /** Creates the group (and the stream): true, or false when it was there already. */
  async #createGroup(start: '$' | '0'): Promise<boolean> {
    const { redis, stream, call } = this.#channel.internals
    return call('createGroup', () => redis.xgroup('CREATE', stream, this.#group, start, 'MKSTREAM')).then(
      () => true,
      (error: unknown) => {
        if (!String((error as Error).message).includes('BUSYGROUP')) throw error
        return false
      },
    )
  }

  /**
   * The wait after a failure: the backoff, cut short once every connection the loop uses is ready
   * again. After an outage the backoff has grown to seconds; work must not sit that long once
   * Redis is back. Everything it listens to is removed when it ends, whichever way.
   */
  #pause(ms: number): Promise<void> {
    const signal = this.#stop.signal
    if (signal.aborted) return Promise.resolve()
    const down = [this.#channel.internals.redis, this.#reader].filter(
      (client): client is RedisClient => client !== null && client.status !== 'ready',
    )
    return new Promise<void>((resolve) => {
      let waiting = down.length
      const end = () => {
        clearTimeout(timer)
        signal.removeEventListener('abort', end)
        for (const client of down) client.off('ready', onReady)
        resolve()
      }
      const onReady = () => {
        if (--waiting === 0) end()
      }
      const timer = setTimeout(end, ms)
      timer.unref()
      signal.addEventListener('abort', end, { once: true })
      for (const client of down) client.once('ready', onReady)
    })
  }

  /** Takes over entries another consumer left unacknowledged past the visibility timeout. */
  async #claim(): Promise<void> {
    const now = performance.now()
    if (now - this.#lastClaim < this.#s.visibilityTimeoutMs / 2) return
    this.#lastClaim = now
    const { redis, stream, dlq, maxLen, call } = this.#channel.internals
    const free = Math.max(1, this.#s.concurrency - this.#inFlight.size)
    const [next, claimed] = (await call('claim', () =>
      redis.xautoclaim(
        stream,
        this.#group,
        this.#s.consumer,
        this.#s.visibilityTimeoutMs,
        this.#claimFrom,
        'COUNT',
        free,
      ),
    )) as [string, Array<[string, string[]] | null>]
    // Where the scan of the pending list goes on: a dead consumer's backlog is taken over batch by
    // batch, each as soon as there is room, not one batch per half visibility timeout from the start.
    this.#claimFrom = next
    if (next !== '0-0') this.#lastClaim = Number.NEGATIVE_INFINITY
    for (const entry of claimed) {
      if (!entry) continue
      const [id, fields] = entry
      const pending = (await call('claim', () => redis.xpending(stream, this.#group, id, id, 1))) as Array<
        [string, string, number, number]
      >
      const deliveries = Number(pending[0]?.[3] ?? 1)
      if (deliveries > this.#s.maxDeliveries) {
        const moved = await call('deadLetter', () =>
          deadLetterScript.run(
            redis,
            [stream, dlq],
            [this.#group, id, deliveries - 1, maxLen, this.#s.consumer],
            this.#channel.internals.scriptOptions,
          ),
        )
        if (moved === 1)
          publishEvent({
            package: 'pubsub',
            event: 'dead-letter',
            group: this.#group,
            id,
            deliveries: deliveries - 1,
          })
        continue
      }
      this.#dispatch(id, fields, deliveries)
    }
  }

  #dispatch(id: string, fields: string[], deliveries: number): void {
    const { redis, stream, codec, call } = this.#channel.internals
    const task = (async () => {
      let message: unknown
      const f = fieldsOf(fields)
      // A dead letter retried for another group: not this group's to handle.
      if (f.g !== undefined && f.g !== this.#group) {
        await call('ack', () => redis.xack(stream, this.#group, id)).catch(() => {})
        return
      }
      try {
        message = fromField(codec, f.m)
      } catch (error) {
        // Never delivered as something else: left pending, it reaches the dead letters.
        publishEvent({ package: 'pubsub', event: 'decode-error', channel: stream, id, error })
        return
      }
      try {
        await this.#handler(message, { id, deliveries })
      } catch (error) {
        publishEvent({ package: 'pubsub', event: 'handler-error', channel: stream, id, deliveries, error })
        return
      }
      await call('ack', () => redis.xack(stream, this.#group, id)).catch((error: unknown) =>
        publishEvent({ package: 'pubsub', event: 'ack-error', channel: stream, id, error }),
      )
    })()
    this.#inFlight.add(task)
    task.finally(() => this.#inFlight.delete(task)).catch(() => {})
  }

  async close(options?: { graceMs?: number }): Promise<void> {
    const o = requireOptions('options', options)
    requireKnownOptions('options', o, ['graceMs'])
    const timeoutMs = requireTimeoutMs('graceMs', o.graceMs ?? 10_000)
    const deadline = performance.now() + timeoutMs
    this.#stop.abort()
    const reader = this.#reader
    // The blocking read returns within blockMs; disconnecting ends it at once.
    reader?.disconnect()
    const finished = await Promise.race([
      Promise.allSettled([this.#running, ...this.#inFlight]).then(() => true),
      delay(timeoutMs).then(() => false),
    ])
    // Handlers still running past timeoutMs are left to finish (or not): their entries stay
    // pending and go to another consumer after the visibility timeout.
    if (!finished)
      publishEvent({ package: 'pubsub', event: 'close-timeout', group: this.#group, graceMs: timeoutMs })
    else await this.#leave(deadline)
    // Within graceMs, whatever Redis does.
    if (reader)
      await shutdown(reader, { timeoutMs: Math.max(1, Math.min(500, deadline - performance.now())) }).catch(
        () => {},
      )
  }

  /**
   * Leaves the group when nothing is pending for this consumer, so a worker restarted under a fresh
   * name (the default) does not add a consumer to the group on every run. One with entries pending
   * stays: deleting it would drop them from the pending list, and they would never be redelivered.
   */
  async #leave(deadline: number): Promise<void> {
    const { redis, stream, call } = this.#channel.internals
    const left = deadline - performance.now()
    if (left <= 0) return
    const leave = (async () => {
      const pending = (await call('close', () =>
        redis.xpending(stream, this.#group, '-', '+', 1, this.#s.consumer),
      )) as unknown[]
      if (pending.length === 0)
        await call('close', () => redis.xgroup('DELCONSUMER', stream, this.#group, this.#s.consumer))
    })()
    // Tidying only: a failure or a slow Redis leaves the consumer, as before.
    await withTimeout(leave, Math.ceil(left), 'close').catch(() => {})
  }
}

/** A read or claim refused because the group (or its stream) no longer exists. */
function isNoGroup(error: unknown): boolean {
  for (let e = error, depth = 0; e instanceof Error && depth < 3; e = e.cause, depth++)
    if (e.message.includes('NOGROUP')) return true
  return false
}
