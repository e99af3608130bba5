import { Cluster, type ClusterOptions, Redis, type RedisOptions } from 'ioredis'
import { afterAll, describe, expect, inject } from 'vitest'
import './global-setup.js'

export type TargetKind = 'standalone' | 'cluster'

export interface Target {
  readonly kind: TargetKind
  /** A new client on the shared server; closed for you after the suite. */
  client(options?: RedisOptions): Redis | Cluster
}

let counter = 0
/** A key prefix unique to this test file and call, so suites sharing a server never collide. */
export function uniquePrefix(label = 't'): string {
  counter++
  return `${label}${process.pid.toString(36)}${Date.now().toString(36)}${counter}`
}

/**
 * RP_TEST_CLIENT_OPTIONS: JSON options added to every client the harness builds, to run the whole
 * suite as users with other client settings would (e.g. '{"stringNumbers":true}').
 */
const auditOptions: RedisOptions = process.env.RP_TEST_CLIENT_OPTIONS
  ? (JSON.parse(process.env.RP_TEST_CLIENT_OPTIONS) as RedisOptions)
  : {}

export function standaloneClient(options: RedisOptions = {}): Redis {
  return new Redis(inject('rpRedisUrl'), { maxRetriesPerRequest: 2, ...auditOptions, ...options })
}

export function clusterClient(options: RedisOptions = {}, clusterOptions: ClusterOptions = {}): Cluster {
  return new Cluster(inject('rpClusterNodes'), {
    redisOptions: { maxRetriesPerRequest: 2, ...auditOptions, ...options },
    ...clusterOptions,
  })
}

/**
 * Runs the same suite body against the shared standalone server and the shared cluster, as the
 * node-redis test-utils do: a behaviour that holds on one and not the other is a bug.
 */
export function describeEachTarget(name: string, body: (target: Target) => void): void {
  for (const kind of ['standalone', 'cluster'] as const) {
    describe(`${name} [${kind}]`, () => {
      const clients: Array<Redis | Cluster> = []
      afterAll(async () => {
        await Promise.all(clients.map((c) => c.quit().catch(() => c.disconnect())))
      })
      body({
        kind,
        client(options) {
          const c = kind === 'standalone' ? standaloneClient(options) : clusterClient(options)
          clients.push(c)
          return c
        },
      })
    })
  }
}

/**
 * Asserts that every builder refuses a client whose options would make @rp wrong without an error
 * (integers as strings; a keyPrefix ioredis applies to KEYS but not to SCAN patterns or ARGV) with
 * UnsupportedClientError (code RP_UNSUPPORTED_CLIENT), before any command is sent: standalone, and
 * a cluster with the option in redisOptions, on a startup node, or (keyPrefix) at its top level.
 * Every client points at port 1, so a builder that wrongly connected could reach no real server.
 */
export function expectUnsupportedClientsRefused(
  builds: (redis: Redis | Cluster) => Array<() => unknown>,
): void {
  const node = { host: '127.0.0.1', port: 1 }
  const clients: Array<[string, Redis | Cluster]> = []
  for (const option of [{ stringNumbers: true }, { keyPrefix: 'app:' }]) {
    const name = JSON.stringify(option)
    clients.push([`standalone ${name}`, new Redis({ ...node, lazyConnect: true, ...option })])
    clients.push([
      `cluster redisOptions ${name}`,
      new Cluster([node], { lazyConnect: true, redisOptions: option }),
    ])
    clients.push([
      `cluster startup node ${name}`,
      new Cluster([{ ...node, ...option }], { lazyConnect: true }),
    ])
  }
  clients.push(['cluster top-level keyPrefix', new Cluster([node], { lazyConnect: true, keyPrefix: 'app:' })])
  try {
    for (const [name, redis] of clients) {
      for (const build of builds(redis)) {
        let thrown: unknown
        try {
          build()
        } catch (error) {
          thrown = error
        }
        expect((thrown as { code?: unknown } | undefined)?.code, `${name}: ${build}`).toBe(
          'RP_UNSUPPORTED_CLIENT',
        )
      }
      expect(redis.status, name).toBe('wait')
    }
  } finally {
    for (const [, redis] of clients) redis.disconnect()
  }
}

/** Polls `check` until it returns true, instead of sleeping a fixed time. */
export async function eventually(
  check: () => boolean | Promise<boolean>,
  timeoutMs = 10_000,
  what = 'condition',
): Promise<void> {
  const deadline = Date.now() + timeoutMs
  while (Date.now() < deadline) {
    if (await check()) return
    await new Promise((r) => setTimeout(r, 20))
  }
  throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`)
}

/** A fixed pause, only where time itself must pass (a TTL, a window); wait for conditions with eventually. */
export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms))
}

/**
 * Asserts that each call returns a Promise that rejects with an @rp InvalidArgumentError whose
 * message matches, and that none of them throws synchronously.
 */
export async function expectInvalidArguments(
  calls: ReadonlyArray<[() => Promise<unknown>, RegExp]>,
): Promise<void> {
  for (const [call, message] of calls) {
    let promise: Promise<unknown> | undefined
    expect(() => {
      promise = call()
    }).not.toThrow()
    const error = await promise!.then(
      () => undefined,
      (e: unknown) => e,
    )
    expect((error as { code?: string } | undefined)?.code, String(message)).toBe('RP_INVALID_ARGUMENT')
    expect((error as Error).message).toMatch(message)
  }
}

/** Writes strings until the server refuses even a 10-byte one (it must run with maxmemory and noeviction). */
export async function fillToMaxmemory(redis: Redis): Promise<void> {
  // Large values first, then ever smaller ones: a 10 kB value that no longer fits can leave up to
  // 10 kB free, and a script checked against maxmemory once, before it runs, would then write freely.
  let i = 0
  for (const size of [10_000, 1_000, 100, 10]) {
    const filler = 'x'.repeat(size)
    for (; ; i++) {
      const refused = await redis.set(`fill:${i}`, filler).then(
        () => false,
        () => true,
      )
      if (refused) break
    }
  }
}
