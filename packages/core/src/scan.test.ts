import { describeEachTarget, uniquePrefix } from '@rp/testing/vitest'
import { expect, it } from 'vitest'
import { InvalidArgumentError } from './errors.js'
import { escapeGlobPart, keyspace } from './keys.js'
import { deleteByPattern, scanKeys } from './scan.js'

describeEachTarget('scan helpers', (target) => {
  it('finds every key of a namespace on every master', async () => {
    const redis = target.client()
    const ks = keyspace(uniquePrefix('scan'))
    const written = Array.from({ length: 200 }, (_, i) => ks.key(`id${i}`, 'v'))
    await Promise.all(written.map((k) => redis.set(k, '1', 'PX', 60_000)))
    const found: string[] = []
    for await (const batch of scanKeys(redis, { match: ks.pattern(), count: 50 })) found.push(...batch)
    expect(new Set(found)).toEqual(new Set(written))
  })

  it('treats glob characters in user input literally', async () => {
    const redis = target.client()
    const ks = keyspace(uniquePrefix('glob'))
    await redis.set(ks.key('a*'), '1', 'PX', 60_000)
    await redis.set(ks.key('abc'), '1', 'PX', 60_000)
    const found: string[] = []
    for await (const batch of scanKeys(redis, { match: ks.pattern(escapeGlobPart('a*')) }))
      found.push(...batch)
    // The pattern's own '*' is a wildcard, the one inside the stored tag is not special.
    expect(found.sort()).toEqual([ks.key('a*'), ks.key('abc')].sort())
    const literal: string[] = []
    for await (const batch of scanKeys(redis, { match: `${ks.key('a*')}*` })) literal.push(...batch)
    expect(literal).toEqual([ks.key('a*')])
  })

  it('deletes across slots in batches and counts what it removed', async () => {
    const redis = target.client()
    const ks = keyspace(uniquePrefix('del'))
    const other = keyspace(uniquePrefix('keep'))
    await Promise.all(Array.from({ length: 300 }, (_, i) => redis.set(ks.key(`k${i}`), '1', 'PX', 60_000)))
    await redis.set(other.key('x'), '1', 'PX', 60_000)
    expect(await deleteByPattern(redis, { match: ks.pattern(), batchSize: 7 })).toBe(300)
    const left: string[] = []
    for await (const batch of scanKeys(redis, { match: ks.pattern() })) left.push(...batch)
    expect(left).toEqual([])
    expect(await redis.exists(other.key('x'))).toBe(1)
  })

  it("a namespace's pattern matches none of the keys planted next to its own", async () => {
    const redis = target.client()
    const ns = uniquePrefix('own')
    const ks = keyspace(ns)
    const mine = [ks.key('a'), ks.key('b', 'x')]
    // A nested namespace, an application's own keys, and a namespace that merely starts alike.
    const planted = [
      keyspace(`${ns}:users`).key('a'),
      `${ns}:42`,
      `${ns}:{`,
      `${ns}x:{a}`,
      `${ns}`,
      `{${ns}}:a`,
    ]
    await Promise.all([...mine, ...planted].map((k) => redis.set(k, '1', 'PX', 60_000)))
    expect(await deleteByPattern(redis, { match: ks.pattern() })).toBe(mine.length)
    for (const k of planted) expect(await redis.exists(k)).toBe(1)
  })

  it('rejects bad options before any command, and never throws synchronously', async () => {
    const redis = target.client()
    await expect(deleteByPattern(redis, { match: '' })).rejects.toThrow(InvalidArgumentError)
    await expect(deleteByPattern(redis, { match: 'x', timeoutMs: Number.NaN })).rejects.toThrow(/timeoutMs/)
    await expect(scanKeys(redis, { match: '' }).next()).rejects.toThrow(InvalidArgumentError)
    await expect(scanKeys(redis, { match: 'x', count: -1 }).next()).rejects.toThrow(/count/)
  })
})
