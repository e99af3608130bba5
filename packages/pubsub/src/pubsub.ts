import {
  assertUsableClient,
  type BatchOption,
  escapeGlob,
  escapeGlobPart,
  fullJitterBackoff,
  globMatcher,
  guarded,
  InvalidArgumentError,
  instrument,
  isCluster,
  type Keyspace,
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
  requireNonNegativeInteger,
  requireOneOf,
  requireOptions,
  requireSignal,
  requireTimeoutMs,
  shutdown,
  unescapeKeyPart,
  withTimeout,
} from '@rp/core/kit'
import {
  type Decoded,
  decodeEnvelope,
  encodeEnvelope,
  jsonCodec,
  PACK_MESSAGES,
  type PubSubCodec,
  packWire,
  wire,
} from './envelope.js'
import { BoundedQueue, type OverflowPolicy } from './queue.js'
import { publishScript, routedPublishScript } from './scripts.js'

/** A Standard Schema validator (zod, valibot, arktype, …), by shape: no dependency on any. */
export interface StandardSchema<T = unknown> {
  readonly '~standard': {
    validate(
      value: unknown,
    ): { value: T; issues?: undefined } | { issues: readonly unknown[] } | Promise<unknown>
  }
}

export interface MessageMeta {
  /** The channel the message came on (your name, not the Redis one). */
  readonly channel: string
  /** The pattern that matched, for psubscribe handlers. */
  readonly pattern?: string
  /** The channel's sequence number, on sequenced channels. */
  readonly seq?: number
  /** When this process received it (epoch ms). */
  readonly receivedAt: number
}

export type Handler<T> = (message: T, meta: MessageMeta) => unknown

export interface Subscription extends AsyncDisposable {
  readonly channel: string
  /** Removes this handler; the last handler of a channel unsubscribes from Redis. */
  unsubscribe(): Promise<void>
}

/** The pause before a failed renewal is tried again: full jitter over 100 ms doubling to 5 s. */
const renewBackoff = fullJitterBackoff(100, 5_000)
/** How long sharded subscribers must stay ready after a lost node before `resubscribed`. */
const SHARDS_SETTLE_MS = 250
/** Most characters of JSON in one pack (a longer message goes alone). */
const PACK_CHARS = 64 * 1024
/** Entries per XREVRANGE call of `replay()`. */
const REPLAY_PAGE = 500
/** After a lost node that no resubscription follows (a replica): renew anyway after this long. */
const SHARDS_QUIET_MS = 1_000

export interface PubSubOptions<Events> extends BatchOption {
  redis: RedisClient
  /** Channel namespace; default `ps`. */
  prefix?: string
  codec?: PubSubCodec
  /**
   * Channels whose messages carry a per-channel sequence number (true: every channel), so a
   * subscriber notices what it missed (`gap`). Publishers and subscribers must agree.
   */
  sequenced?: boolean | ReadonlyArray<keyof Events & string>
  /** Keep the last n messages of each sequenced channel in a capped stream; default 0. */
  replay?: number
  /** SPUBLISH/SSUBSCRIBE (Redis 7 sharded pub/sub); patterns are not available then. */
  sharded?: boolean
  /** Validators per channel: a message that fails is not published, or not delivered. */
  schemas?: { [C in keyof Events]?: StandardSchema<Events[C]> }
  /** Bound on one Redis call; default 1000. */
  timeoutMs?: number
  /** TTL of sequence counters and replay streams, refreshed by each publish; default 7 days. */
  sequenceTtlMs?: number
}

export interface IterateOptions {
  signal?: AbortSignal
  /** Most messages held for a slow consumer; default 1000. */
  bufferSize?: number
  /** Beyond bufferSize: `'drop-oldest'` (default), `'drop-newest'` or `'error'` (the iterator throws). */
  overflow?: OverflowPolicy
}

export type PubSubEventName =
  | 'subscribed'
  | 'resubscribed'
  | 'disconnected'
  | 'gap'
  | 'handler-error'
  | 'overflow'
  | 'decode-error'

interface Entry {
  handler: Handler<unknown>
  pattern?: string
}

interface PatternEntry {
  glob: string
  /** The PSUBSCRIBE of its first subscriber: later ones resolve only once it is active. */
  ready?: Promise<unknown>
  matches: (channel: string) => boolean
  handlers: Set<Entry>
}

const OPTIONS = [
  'redis',
  'prefix',
  'codec',
  'sequenced',
  'replay',
  'sharded',
  'schemas',
  'timeoutMs',
  'batch',
  'sequenceTtlMs',
]
const GLOB = /[*?[\]]/

/**
 * Typed pub/sub on one subscriber connection (a duplicate of `redis`, made on first subscribe).
 * Handlers are isolated from each other; after a reconnect every subscription is renewed and
 * `resubscribed` fires; sequenced channels report what they missed as `gap`.
 */
export class PubSub<Events extends Record<string, unknown> = Record<string, unknown>> {
  readonly #redis: RedisClient
  readonly #keys: Keyspace
  readonly #prefix: string
  readonly #codec: PubSubCodec
  readonly #sequenced: boolean | ReadonlySet<string>
  readonly #replay: number
  readonly #sharded: boolean
  /** By channel: a Map, so a channel named like an Object.prototype member ('constructor') has none. */
  readonly #schemas: Map<string, StandardSchema>
  readonly #guard: RedisGuard
  readonly #timeoutMs: number
  readonly #ttlMs: number
  readonly #listeners = new Map<string, Set<(event: never) => void>>()
  readonly #channels = new Map<string, Set<Entry>>()
  /** Per Redis channel, the SUBSCRIBE of its first subscriber: later ones wait for it to be active. */
  readonly #ready = new Map<string, Promise<unknown>>()
  readonly #patterns = new Map<string, PatternEntry>()
  readonly #lastSeq = new Map<string, number>()
  #subscriber: RedisClient | null = null
  #everReady = false
  #closed = false
  #settle: NodeJS.Timeout | null = null
  /** The retry of a failed renewal (apart from #settle, which the sharded-subscriber watch owns). */
  #renewTimer: NodeJS.Timeout | null = null
  /** Renewals that failed in a row: the next waits longer. */
  #renewals = 0
  #pending = new Set<Promise<unknown>>()
  /** Whether unsequenced JSON publishes of one tick and channel leave as one pack (`batch`). */
  readonly #packing: boolean
  /** The tail of each channel's validations of delivered messages, which run one at a time. */
  readonly #validations = new Map<string, Promise<void>>()
  /** Builds a pack's frame and script arguments, per Redis channel (see Mergeable). */
  readonly #joins = new Map<string, (texts: readonly string[]) => readonly string[]>()
  /** Open iterators' stop functions: close() ends them, so no next() is left unsettled. */
  readonly #iterators = new Set<() => void>()

  /** @throws InvalidArgumentError for a bad or unknown option. */
  constructor(options: PubSubOptions<Events>) {
    const o = requireOptions('options', options)
    requireKnownOptions('options', o, OPTIONS)
    this.#redis = assertUsableClient(o.redis)
    this.#prefix = requireNonEmptyString('prefix', o.prefix ?? 'ps')
    this.#keys = keyspace(this.#prefix)
    const codec = o.codec ?? jsonCodec
    requireFunction('codec.encode', codec?.encode)
    requireFunction('codec.decode', codec?.decode)
    this.#codec = codec
    const sequenced = o.sequenced ?? false
    if (typeof sequenced === 'boolean') this.#sequenced = sequenced
    else if (Array.isArray(sequenced))
      this.#sequenced = new Set(sequenced.map((c, i) => this.#requireChannel(`sequenced[${i}]`, c)))
    else throw new InvalidArgumentError('sequenced', 'must be true, false or an array of channels')
    this.#replay = requireIntegerInRange('replay', o.replay ?? 0, 0, 1_000_000)
    if (this.#replay > 0 && this.#sequenced === false)
      throw new InvalidArgumentError(
        'replay',
        'needs sequenced channels: a replay is found by sequence number',
      )
    this.#sharded = o.sharded ?? false
    if (typeof this.#sharded !== 'boolean') throw new InvalidArgumentError('sharded', 'must be true or false')
    const schemas = requireOptions(
      'schemas',
      o.schemas as Record<string, StandardSchema | undefined> | undefined,
    )
    this.#schemas = new Map()
    // Checked now, not at the first message on that channel: a schema that is not one would only
    // fail a publish or a delivery later, far from the mistake.
    for (const [channel, schema] of Object.entries(schemas)) {
      if (schema === undefined) continue
      if (typeof schema?.['~standard']?.validate !== 'function')
        throw new InvalidArgumentError(
          `schemas.${channel}`,
          'must be a Standard Schema (zod, valibot, arktype, …)',
        )
      this.#schemas.set(channel, schema)
    }
    this.#timeoutMs = requireTimeoutMs('timeoutMs', o.timeoutMs ?? 1_000)
    const batch = requireBoolean('batch', o.batch ?? true)
    this.#packing = batch && codec === jsonCodec
    this.#guard = new RedisGuard(this.#redis, this.#timeoutMs, { batch })
    this.#ttlMs = requireTimeoutMs('sequenceTtlMs', o.sequenceTtlMs ?? 7 * 86_400_000)
  }

  /** Listens to the bus's own events. A listener that throws is reported, never rethrown. */
  on(event: 'subscribed', listener: (e: { channel: string; pattern?: string }) => void): this
  on(event: 'resubscribed', listener: (e: { channels: number; patterns: number }) => void): this
  on(event: 'disconnected', listener: (e: { error?: unknown }) => void): this
  on(event: 'gap', listener: (e: { channel: string; missed: number; from: number; to: number }) => void): this
  on(event: 'handler-error', listener: (e: { channel: string; error: unknown }) => void): this
  on(
    event: 'overflow',
    listener: (e: { channel: string; policy: OverflowPolicy; dropped: number }) => void,
  ): this
  on(event: 'decode-error', listener: (e: { channel: string; seq?: number; error: unknown }) => void): this
  on(event: PubSubEventName, listener: (e: never) => void): this {
    requireOneOf('event', event, [
      'subscribed',
      'resubscribed',
      'disconnected',
      'gap',
      'handler-error',
      'overflow',
      'decode-error',
    ])
    requireFunction('listener', listener)
    const set = this.#listeners.get(event) ?? new Set()
    set.add(listener)
    this.#listeners.set(event, set)
    return this
  }

  off(event: PubSubEventName, listener: (e: never) => void): this {
    this.#listeners.get(event)?.delete(listener)
    return this
  }

  #emit(event: PubSubEventName, payload: Record<string, unknown>): void {
    publishEvent({ package: 'pubsub', event, ...payload })
    for (const listener of this.#listeners.get(event) ?? [])
      guarded('pubsub', `on('${event}')`, listener)(payload as never)
  }

  #requireChannel(name: string, channel: unknown): string {
    requireNonEmptyString(name, channel)
    if (GLOB.test(channel as string))
      throw new InvalidArgumentError(
        name,
        `is a pattern (it holds * ? [ or ]); use psubscribe for ${JSON.stringify(channel)}`,
      )
    return channel as string
  }

  #isSequenced(channel: string): boolean {
    return this.#sequenced === true || (this.#sequenced !== false && this.#sequenced.has(channel))
  }

  /** The Redis channel for one of ours. */
  #redisChannel(channel: string): string {
    return this.#keys.channel(channel)
  }

  /**
   * Publishes; resolves to how many subscribers received it. On a Cluster that counts only the
   * subscribers connected to the node that ran it (Redis's own rule), so do not read 0 as "nobody".
   * Every publish of one channel runs on the master of its slot, so its subscribers see them in
   * publish order.
   */
  publish<C extends keyof Events & string>(channel: C, message: Events[C]): Promise<number> {
    return promised(async () => {
      // As subscribe and replay: a closed bus is done (its sequence baselines are gone too).
      if (this.#closed) throw new InvalidArgumentError('pubsub', 'is closed')
      this.#requireChannel('channel', channel)
      await this.#validate(channel, message, true)
      const envelope = encodeEnvelope(this.#codec, message)
      const redisChannel = this.#redisChannel(channel)
      return instrument({ package: 'pubsub', operation: 'publish' }, () =>
        this.#guard.run('publish', async () => {
          if (this.#isSequenced(channel)) {
            const [receivers] = await publishScript.run(
              this.#redis,
              [this.#keys.key(channel, 'seq'), this.#keys.key(channel, 'replay')],
              [
                redisChannel,
                envelope.head,
                envelope.body,
                this.#replay,
                this.#ttlMs,
                this.#sharded ? '1' : '0',
              ],
              this.#guard.scriptOptions,
            )
            return Number(receivers)
          }
          if (this.#packing && typeof envelope.body === 'string' && envelope.head === 'j')
            return this.#enqueue(channel, redisChannel, envelope.body)
          return this.#publishFrame(channel, redisChannel, wire(envelope))
        }),
      )
    })
  }

  /**
   * One wire message to the channel. A script even on a standalone server, where its key only
   * names the channel: a tick's publishes to different channels then leave as one batch.
   */
  async #publishFrame(channel: string, redisChannel: string, frame: string | Buffer): Promise<number> {
    return Number(
      await routedPublishScript.run(
        this.#redis,
        [this.#keys.key(channel, 'seq')],
        [redisChannel, frame, this.#sharded ? '1' : '0'],
        this.#guard.scriptOptions,
      ),
    )
  }

  /**
   * Sends a message in the tick's batch as a call that the next publishes to its channel may join
   * (core's Mergeable): they leave as one pack, a frame every subscriber parses once and Redis
   * writes once per subscriber, so the cost of a broadcast falls with the publish rate. Only
   * consecutive calls merge, so nothing overtakes anything. Each publish resolves to the pack's
   * receiver count.
   */
  async #enqueue(channel: string, redisChannel: string, text: string): Promise<number> {
    let join = this.#joins.get(redisChannel)
    if (!join) {
      // Bounded: a bus that publishes to ever new channels starts over (only merging is lost).
      if (this.#joins.size >= 1_000) this.#joins.clear()
      const shard = this.#sharded ? '1' : '0'
      // One message alone keeps the plain form, which subscribers of earlier versions read too.
      join = (texts) => [redisChannel, texts.length === 1 ? `j:${texts[0]}` : packWire(texts), shard]
      this.#joins.set(redisChannel, join)
    }
    return Number(
      await routedPublishScript.runMerged(this.#redis, [this.#keys.key(channel, 'seq')], {
        group: redisChannel,
        item: text,
        join,
        maxItems: PACK_MESSAGES,
        maxChars: PACK_CHARS,
      }),
    )
  }

  async #validate(channel: string, value: unknown, publishing: boolean): Promise<unknown> {
    const schema = this.#schemas.get(channel)
    if (!schema) return value
    const result = (await schema['~standard'].validate(value)) as {
      value?: unknown
      issues?: readonly unknown[]
    }
    if (result.issues) {
      if (publishing)
        throw new InvalidArgumentError(
          'message',
          `does not match the schema of ${JSON.stringify(channel)}: ${JSON.stringify(result.issues).slice(0, 500)}`,
        )
      throw new Error(`the message does not match the schema: ${JSON.stringify(result.issues).slice(0, 500)}`)
    }
    return result.value
  }

  /** Runs `handler` for every message on `channel`; resolves once the subscription is active. */
  subscribe<C extends keyof Events & string>(channel: C, handler: Handler<Events[C]>): Promise<Subscription> {
    return promised(async () => {
      this.#requireChannel('channel', channel)
      requireFunction('handler', handler)
      const redisChannel = this.#redisChannel(channel)
      const entry: Entry = { handler: handler as Handler<unknown> }
      let set = this.#channels.get(redisChannel)
      const first = !set
      if (!set) {
        set = new Set()
        this.#channels.set(redisChannel, set)
      }
      set.add(entry)
      if (!first) {
        // Resolve only once the first subscriber's SUBSCRIBE is active, and fail with it.
        try {
          await this.#ready.get(redisChannel)
        } catch (error) {
          set.delete(entry)
          throw error
        }
        // Every earlier subscriber left while this one waited: subscribe afresh.
        if (this.#channels.get(redisChannel) !== set) return this.subscribe(channel, handler)
      } else {
        const subscribing = this.#command(this.#sharded ? 'ssubscribe' : 'subscribe', redisChannel)
        this.#ready.set(redisChannel, subscribing)
        try {
          await subscribing
        } catch (error) {
          // Everyone waiting on this SUBSCRIBE fails with it, and the channel is not left half-set.
          if (this.#channels.get(redisChannel) === set) this.#channels.delete(redisChannel)
          if (this.#ready.get(redisChannel) === subscribing) this.#ready.delete(redisChannel)
          throw error
        }
        this.#emit('subscribed', { channel })
        // A baseline, so a reconnect before the first message still counts what it missed.
        if (this.#isSequenced(channel) && !this.#lastSeq.has(redisChannel)) {
          const current = await this.#guard
            .run('subscribe', () => this.#redis.get(this.#keys.key(channel, 'seq')))
            .catch(() => null)
          if (!this.#lastSeq.has(redisChannel)) this.#lastSeq.set(redisChannel, Number(current ?? 0))
        }
      }
      return this.#subscription(channel, async () => {
        const handlers = this.#channels.get(redisChannel)
        if (!handlers?.delete(entry) || handlers.size > 0) return
        this.#channels.delete(redisChannel)
        this.#ready.delete(redisChannel)
        this.#lastSeq.delete(redisChannel)
        await this.#command(this.#sharded ? 'sunsubscribe' : 'unsubscribe', redisChannel).catch(() => {})
      })
    })
  }

  /**
   * Runs `handler` for every message on channels matching `pattern` (Redis glob syntax over your
   * channel names). Not available with `sharded`.
   */
  psubscribe(pattern: string, handler: Handler<unknown>): Promise<Subscription> {
    return promised(async () => {
      requireNonEmptyString('pattern', pattern)
      if (!GLOB.test(pattern))
        throw new InvalidArgumentError(
          'pattern',
          `has no * ? or [ ]: it is a channel; use subscribe for ${JSON.stringify(pattern)}`,
        )
      if (this.#sharded)
        throw new InvalidArgumentError('pattern', 'sharded pub/sub has no pattern subscriptions')
      requireFunction('handler', handler)
      const redisPattern = `${escapeGlob(this.#prefix)}:{${escapeGlobPart(pattern)}}`
      const entry: Entry = { handler, pattern }
      let p = this.#patterns.get(pattern)
      const first = !p
      if (!p) {
        p = { glob: redisPattern, matches: globMatcher(pattern), handlers: new Set() }
        this.#patterns.set(pattern, p)
      }
      p.handlers.add(entry)
      if (!first) {
        try {
          await p.ready
        } catch (error) {
          p.handlers.delete(entry)
          throw error
        }
        if (this.#patterns.get(pattern) !== p) return this.psubscribe(pattern, handler)
      }
      if (first && ![...this.#patterns.values()].some((q) => q !== p && q.glob === redisPattern)) {
        const subscribing = this.#command('psubscribe', redisPattern)
        p.ready = subscribing
        try {
          await subscribing
        } catch (error) {
          if (this.#patterns.get(pattern) === p) this.#patterns.delete(pattern)
          throw error
        }
      }
      if (first) this.#emit('subscribed', { channel: pattern, pattern })
      return this.#subscription(pattern, async () => {
        const q = this.#patterns.get(pattern)
        if (!q?.handlers.delete(entry) || q.handlers.size > 0) return
        this.#patterns.delete(pattern)
        if (![...this.#patterns.values()].some((r) => r.glob === redisPattern))
          await this.#command('punsubscribe', redisPattern).catch(() => {})
      })
    })
  }

  /**
   * The messages of `channel` as an async iterator that holds at most `bufferSize` of them. Its
   * first next() resolves only once the subscription is active. return(), break and an aborted
   * signal unsubscribe.
   */
  iterate<C extends keyof Events & string>(
    channel: C,
    options?: IterateOptions,
  ): AsyncIterableIterator<Events[C]> {
    const opts = requireOptions('options', options)
    requireKnownOptions('options', opts, ['signal', 'bufferSize', 'overflow'])
    this.#requireChannel('channel', channel)
    const signal = requireSignal('signal', opts.signal)
    const bufferSize = requireIntegerInRange('bufferSize', opts.bufferSize ?? 1_000, 1, 10_000_000)
    const overflow = requireOneOf('overflow', opts.overflow ?? 'drop-oldest', [
      'drop-oldest',
      'drop-newest',
      'error',
    ] as const)
    const queue: BoundedQueue<Events[C]> = new BoundedQueue<Events[C]>(bufferSize, overflow, (dropped) => {
      this.#emit('overflow', { channel, policy: overflow, dropped })
      // An iterator failed by 'error' stops listening at once: for await does not call return()
      // when next() rejects.
      if (overflow === 'error') release()
    })
    const subscribing = this.subscribe(channel, (message) => queue.push(message))
    subscribing.catch((error: unknown) => queue.fail(error))
    const release = () => {
      this.#iterators.delete(stop)
      subscribing.then((s) => s.unsubscribe()).catch(() => {})
    }
    const stop = () => {
      queue.end()
      release()
    }
    this.#iterators.add(stop)
    if (signal?.aborted) stop()
    else signal?.addEventListener('abort', stop, { once: true })
    const iterator: AsyncIterableIterator<Events[C]> = {
      next: async () => {
        await subscribing.catch(() => {})
        return queue.next()
      },
      return: async () => {
        signal?.removeEventListener('abort', stop)
        stop()
        return { done: true, value: undefined }
      },
      [Symbol.asyncIterator]() {
        return iterator
      },
    }
    return iterator
  }

  /**
   * What a sequenced channel kept (`replay: n` on its publishers), oldest first, from sequence
   * number `fromSeq` on (default: all kept): what a subscriber reads to fill a `gap`. Read newest
   * first, 500 entries a call, each call bounded by timeoutMs, and only back to `fromSeq`. The
   * stream keeps at least the last n (`MAXLEN ~`); if the first seq returned is above `fromSeq`, the
   * ones before it are gone. Messages go through the channel's schema, as delivered ones do; one
   * that no longer decodes or validates is a `decode-error` event (with its `seq`), and skipped.
   */
  replay<C extends keyof Events & string>(
    channel: C,
    options: { fromSeq?: number } = {},
  ): Promise<Array<{ seq: number; message: Events[C] }>> {
    return promised(async () => {
      if (this.#closed) throw new InvalidArgumentError('pubsub', 'is closed')
      this.#requireChannel('channel', channel)
      requireKnownOptions('options', requireOptions('options', options), ['fromSeq'])
      const from = requireNonNegativeInteger('fromSeq', options.fromSeq ?? 0)
      if (!this.#isSequenced(channel))
        throw new InvalidArgumentError('channel', `'${channel}' is not sequenced, so nothing is kept`)
      const key = this.#keys.key(channel, 'replay')
      const kept: Array<[number, Buffer]> = []
      let end = '+'
      for (;;) {
        const page = (await this.#guard.run('replay', () =>
          this.#redis.xrevrangeBuffer(key, end, '-', 'COUNT', REPLAY_PAGE),
        )) as Array<[Buffer, Buffer[]]>
        let older = false
        for (const [, fields] of page) {
          const seq = Number(fields[1]?.toString())
          if (!(seq >= from)) {
            older = true
            break
          }
          if (fields[3]) kept.push([seq, fields[3]])
        }
        if (older || page.length < REPLAY_PAGE) break
        end = `(${page[page.length - 1]![0].toString()}`
      }
      const out: Array<{ seq: number; message: Events[C] }> = []
      for (let i = kept.length - 1; i >= 0; i--) {
        const [seq, raw] = kept[i]!
        try {
          const value = await this.#validate(channel, decodeEnvelope(this.#codec, raw).value, false)
          out.push({ seq, message: value as Events[C] })
        } catch (error) {
          this.#emit('decode-error', { channel, seq, error })
        }
      }
      return out
    })
  }

  /** Resolves once every current subscription is active on the subscriber connection. */
  ready(): Promise<void> {
    return promised(async () => {
      await Promise.all([...this.#pending])
      const sub = this.#subscriber
      if (sub && sub.status !== 'ready' && (this.#channels.size || this.#patterns.size)) {
        // Bounded, like every wait here: while Redis is down this rejects instead of hanging.
        await withTimeout(
          new Promise<void>((resolve) => sub.once('ready', () => resolve())),
          this.#timeoutMs,
          'ready',
        )
      }
      await Promise.all([...this.#pending])
    })
  }

  /** Unsubscribes everything and closes the subscriber connection (bounded). */
  close(): Promise<void> {
    return promised(async () => {
      this.#closed = true
      if (this.#settle) clearTimeout(this.#settle)
      if (this.#renewTimer) clearTimeout(this.#renewTimer)
      for (const stop of [...this.#iterators]) stop()
      this.#channels.clear()
      this.#ready.clear()
      this.#patterns.clear()
      const sub = this.#subscriber
      this.#subscriber = null
      if (sub) await shutdown(sub, { timeoutMs: 1_000 })
    })
  }

  #subscription(channel: string, remove: () => Promise<void>): Subscription {
    let done: Promise<void> | null = null
    const unsubscribe = () => {
      done ??= remove()
      return done
    }
    return { channel, unsubscribe, [Symbol.asyncDispose]: unsubscribe }
  }

  /** Sends a (un)subscribe command on the subscriber connection, bounded by timeoutMs. */
  #command(
    command: 'subscribe' | 'ssubscribe' | 'unsubscribe' | 'sunsubscribe' | 'psubscribe' | 'punsubscribe',
    arg: string,
  ): Promise<unknown> {
    const sub = this.#connection()
    const send = () =>
      (sub as unknown as Record<string, (a: string) => Promise<unknown>>)[command]!.call(sub, arg)
    // A Cluster picks its subscriber node from the startup nodes and may pick again once it has
    // loaded the slots, dropping what was published in between: subscribe once it is ready.
    const run = this.#guard.run(command, () =>
      isCluster(sub) && sub.status !== 'ready'
        ? new Promise<void>((resolve) => sub.once('ready', () => resolve())).then(send)
        : send(),
    )
    this.#pending.add(run)
    return run.finally(() => this.#pending.delete(run))
  }

  #connection(): RedisClient {
    if (this.#closed) throw new InvalidArgumentError('pubsub', 'is closed')
    if (this.#subscriber) return this.#subscriber
    const sub = isCluster(this.#redis)
      ? this.#redis.duplicate([], this.#sharded ? ({ shardedSubscribers: true } as object) : {})
      : this.#redis.duplicate({ autoResubscribe: true })
    sub.on('error', () => {})
    const onBuffer = (redisChannel: Buffer, raw: Buffer) =>
      this.#deliver(redisChannel.toString(), raw, undefined)
    sub.on('messageBuffer', guarded('pubsub', 'message', onBuffer))
    sub.on('smessageBuffer', guarded('pubsub', 'smessage', onBuffer))
    sub.on(
      'pmessageBuffer',
      guarded('pubsub', 'pmessage', (pattern: Buffer, redisChannel: Buffer, raw: Buffer) =>
        this.#deliverPattern(pattern.toString(), redisChannel.toString(), raw),
      ),
    )
    sub.on(
      'close',
      guarded('pubsub', 'close', () => this.#everReady && this.#emit('disconnected', {})),
    )
    sub.on(
      'ready',
      guarded('pubsub', 'ready', () => this.#onReady()),
    )
    if (isCluster(this.#redis) && this.#sharded) this.#watchShards(sub)
    this.#subscriber = sub
    return sub
  }

  /**
   * Sharded subscriptions live on per-node connections ioredis manages itself; a lost node and the
   * resubscription after the slot map changed show only as `-node` and `subscribersReady`. While a
   * failover settles, ioredis goes round that pair every few milliseconds, so `disconnected` fires
   * on the first loss and the subscriptions are renewed (then `resubscribed`) once the subscribers
   * stayed ready for a moment. A `-node` can also be a replica or a command connection, after which
   * no `subscribersReady` comes: the renewal then runs after a longer quiet spell anyway, so a
   * `disconnected` is never left without its answer.
   */
  #watchShards(sub: RedisClient): void {
    let healthy = true
    const renewAfter = (ms: number) => {
      if (this.#settle) clearTimeout(this.#settle)
      this.#settle = setTimeout(
        guarded('pubsub', 'resubscribe', () => {
          this.#settle = null
          if (this.#closed) return
          healthy = true
          this.#onReady()
        }),
        ms,
      )
      this.#settle.unref()
    }
    sub.on(
      '-node',
      guarded('pubsub', '-node', () => {
        if (this.#closed || !this.#everReady) return
        if (healthy) this.#emit('disconnected', {})
        healthy = false
        renewAfter(SHARDS_QUIET_MS)
      }),
    )
    sub.on(
      'nodeError',
      guarded('pubsub', 'nodeError', (error: unknown) => {
        // A slot that moved to another master takes its sharded subscriptions with it: the old
        // owner sends SUNSUBSCRIBE, which ioredis reports only as a command-queue error of that node
        // and does not follow. Refreshing the slot map makes ioredis subscribe on the new owner.
        if (this.#closed || !this.#everReady) return
        if (!/Last reply: sunsubscribe,/.test(error instanceof Error ? error.message : '')) return
        if (healthy) this.#emit('disconnected', {})
        healthy = false
        ;(sub as unknown as { refreshSlotsCache(): void }).refreshSlotsCache()
        renewAfter(SHARDS_QUIET_MS)
      }),
    )
    sub.on(
      'subscribersReady',
      guarded('pubsub', 'subscribersReady', () => {
        if (this.#closed) return
        if (healthy && this.#everReady && this.#channels.size > 0) {
          // The slot map changed while nothing looked wrong: ioredis 6 follows a moved slot by
          // itself. Its subscriptions were off on the way, so say so, then renew as after a loss.
          this.#emit('disconnected', {})
          healthy = false
        }
        if (!healthy) renewAfter(SHARDS_SETTLE_MS)
      }),
    )
  }

  #onReady(): void {
    if (!this.#everReady) {
      this.#everReady = true
      return
    }
    // ioredis resubscribes by itself; do it once more and wait for the answers, so `resubscribed`
    // means every subscription is active again, then count what sequenced channels missed.
    const channels = Array.from(this.#channels, ([channel]) => channel)
    const patterns = [...new Set([...this.#patterns.values()].map((p) => p.glob))]
    // A renewal already waiting is this one now.
    if (this.#renewTimer) clearTimeout(this.#renewTimer)
    this.#renewTimer = null
    const renew = Promise.all([
      ...channels.map((c) => this.#command(this.#sharded ? 'ssubscribe' : 'subscribe', c)),
      ...patterns.map((p) => this.#command('psubscribe', p)),
    ])
    renew.then(
      () => {
        this.#renewals = 0
        this.#emit('resubscribed', { channels: channels.length, patterns: patterns.length })
        // Only the renewal is retried: a gap count that cannot be read is reported, not looped on.
        this.#checkGaps(channels).catch((error: unknown) =>
          publishEvent({ package: 'pubsub', event: 'gap-check-error', error }),
        )
      },
      (error: unknown) => {
        this.#emit('disconnected', { error })
        this.#renewLater()
      },
    )
  }

  /**
   * A renewal that failed (a subscribe slower than timeoutMs on a server still warming up) is tried
   * again, with a growing pause, while the connection is up; a connection that dropped again renews
   * on its next `ready`. So a `disconnected` is always answered by a `resubscribed` once Redis is
   * back, never left standing after one slow reply.
   */
  #renewLater(): void {
    if (this.#closed) return
    // Full jitter, so the buses of a process (or a fleet) do not retry in step after one restart.
    const wait = renewBackoff(this.#renewals++)
    if (this.#renewTimer) clearTimeout(this.#renewTimer)
    this.#renewTimer = setTimeout(
      guarded('pubsub', 'resubscribe', () => {
        this.#renewTimer = null
        if (!this.#closed && this.#subscriber?.status === 'ready') this.#onReady()
      }),
      wait,
    )
    this.#renewTimer.unref()
  }

  /** After a reconnect: what each sequenced channel published while we were away. */
  async #checkGaps(redisChannels: readonly string[]): Promise<void> {
    for (const redisChannel of redisChannels) {
      const channel = this.#nameOf(redisChannel)
      const last = this.#lastSeq.get(redisChannel)
      if (channel === null || last === undefined || !this.#isSequenced(channel)) continue
      const current = Number(
        await this.#guard.run('gap', () => this.#redis.get(this.#keys.key(channel, 'seq'))),
      )
      const seen = this.#lastSeq.get(redisChannel) ?? last
      if (current > seen) {
        this.#lastSeq.set(redisChannel, current)
        this.#emit('gap', { channel, missed: current - seen, from: seen + 1, to: current })
      } else if (current < seen) {
        // The counter was lost with Redis: how much was missed cannot be known, only that it restarted.
        this.#lastSeq.set(redisChannel, current)
        this.#emit('gap', { channel, missed: current, from: 1, to: current, reset: true })
      }
    }
  }

  #nameOf(redisChannel: string): string | null {
    const tag = this.#keys.tagOf(redisChannel)
    return tag === null ? null : unescapeKeyPart(tag)
  }

  #deliver(redisChannel: string, raw: Buffer, pattern: PatternEntry | undefined, patternName?: string): void {
    const handlers = pattern ? pattern.handlers : this.#channels.get(redisChannel)
    if (!handlers?.size) return
    const channel = this.#nameOf(redisChannel)
    if (channel === null) return
    let decoded: Decoded
    try {
      decoded = decodeEnvelope(this.#codec, raw)
    } catch (error) {
      this.#emit('decode-error', { channel, error })
      return
    }
    if (!pattern && decoded.seq !== undefined) this.#sequence(redisChannel, channel, decoded.seq)
    const meta: MessageMeta = {
      channel,
      ...(patternName === undefined ? {} : { pattern: patternName }),
      ...(decoded.seq === undefined ? {} : { seq: decoded.seq }),
      receivedAt: Date.now(),
    }
    const run = (value: unknown) => {
      for (const entry of handlers) {
        try {
          const result = entry.handler(value, meta)
          if (result && typeof (result as Promise<unknown>).then === 'function')
            (result as Promise<unknown>).then(undefined, (error: unknown) =>
              this.#emit('handler-error', { channel, error }),
            )
        } catch (error) {
          this.#emit('handler-error', { channel, error })
        }
      }
    }
    const values = decoded.values ?? [decoded.value]
    if (!this.#schemas.has(channel)) {
      for (const value of values) run(value)
      return
    }
    // Validation may be async: one chain per channel (and pattern) keeps every message, of a pack
    // or of the frames after it, in publish order.
    const key = patternName === undefined ? redisChannel : `${patternName}\n${redisChannel}`
    let tail = this.#validations.get(key) ?? Promise.resolve()
    // Each bounded by timeoutMs: a validation that never settles is reported, not waited on by
    // every later message of the channel.
    for (const value of values)
      tail = tail.then(() =>
        withTimeout(this.#validate(channel, value, false), this.#timeoutMs, 'validate').then(
          run,
          (error: unknown) => this.#emit('decode-error', { channel, error }),
        ),
      )
    this.#validations.set(key, tail)
    const last = tail
    last.then(() => {
      if (this.#validations.get(key) === last) this.#validations.delete(key)
    })
  }

  #sequence(redisChannel: string, channel: string, seq: number): void {
    const last = this.#lastSeq.get(redisChannel)
    this.#lastSeq.set(redisChannel, seq)
    if (last === undefined || seq === last + 1 || seq === last) return
    // Lower than before: the counter started again (Redis lost it, or it expired after
    // sequenceTtlMs of silence); at least the messages before this one went unseen.
    if (seq < last) this.#emit('gap', { channel, missed: seq - 1, from: 1, to: seq - 1, reset: true })
    else this.#emit('gap', { channel, missed: seq - last - 1, from: last + 1, to: seq - 1 })
  }

  #deliverPattern(redisPattern: string, redisChannel: string, raw: Buffer): void {
    const channel = this.#nameOf(redisChannel)
    if (channel === null) return
    // One Redis pattern may serve several of ours (escaping widens ? and [ ] to *): match exactly.
    for (const [name, p] of this.#patterns)
      if (p.glob === redisPattern && p.matches(channel)) this.#deliver(redisChannel, raw, p, name)
  }
}
