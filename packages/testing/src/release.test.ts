/**
 * The release, end to end, on a throwaway copy of the repository (never the working tree):
 * changesets version and publish to a real local registry (Verdaccio), then every public package
 * is installed alone from that registry, as a user would, and loaded from CommonJS, ESM and the
 * type checker before it makes a real call against a redis-server.
 */
import { execFileSync } from 'node:child_process'
import {
  cpSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs'
import { tmpdir } from 'node:os'
import { dirname, join, resolve } from 'node:path'
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest'
import { type LocalRegistry, startLocalRegistry } from './local-registry.js'

const root = resolve(import.meta.dirname, '../../..')
const changeset = join(root, 'node_modules/.bin/changeset')
const tsc = join(root, 'node_modules/typescript/bin/tsc')
const tsx = join(root, 'node_modules/.bin/tsx')
const typesNode = (
  JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as { devDependencies: Record<string, string> }
).devDependencies['@types/node']!

interface Manifest {
  name: string
  version: string
  private?: boolean
  dependencies?: Record<string, string>
  peerDependencies?: Record<string, string>
  peerDependenciesMeta?: Record<string, { optional?: boolean }>
  optionalDependencies?: Record<string, string>
  exports?: Record<string, unknown>
}
const readJson = <T>(file: string): T => JSON.parse(readFileSync(file, 'utf8')) as T

const publicDirs = readdirSync(join(root, 'packages')).filter(
  (d) => !readJson<Manifest>(join(root, 'packages', d, 'package.json')).private,
)
const names = publicDirs.map((d) => readJson<Manifest>(join(root, 'packages', d, 'package.json')).name)

/** A real call per package, the same from CommonJS and ESM: `m` is the package, `redis` a client. */
const realCall: Record<string, string> = {
  '@rp/core': `const r = await m.health(redis); if (!r.ok) throw new Error('unhealthy')`,
  '@rp/ratelimit': `const r = await new m.RateLimiter({ redis, prefix, algorithm: 'gcra', limit: 5, windowMs: 1000 }).limit('k'); if (!r.allowed) throw new Error('denied')`,
  '@rp/lock': `const locks = new m.LockManager({ redis, prefix }); const lock = await locks.acquire('r', { ttlMs: 1000 }); if ((await lock.release()) !== 'released') throw new Error('not released'); await locks.close()`,
  '@rp/cache': `const c = new m.Cache({ redis, prefix, ttlMs: 1000 }); await c.set('k', 41); if ((await c.get('k')) !== 41) throw new Error('miss'); await c.close()`,
  '@rp/session': `const s = new m.SessionStore({ redis, prefix }); const x = await s.create('u', { a: 1 }); if ((await s.get(x.id))?.data.a !== 1) throw new Error('lost')`,
  '@rp/pubsub': `const b = new m.PubSub({ redis, prefix }); if ((await b.publish('c', { a: 1 })) !== 0) throw new Error('receivers'); await b.close()`,
  '@rp/leaderboard': `const r = await new m.Leaderboard({ redis, prefix, name: 'b' }).submit('m', 1); if (r.rank !== 1) throw new Error('rank')`,
}

let registry: LocalRegistry
let copy: string
let work: string

function sh(command: string, args: string[], cwd: string, env: NodeJS.ProcessEnv = {}): string {
  try {
    return execFileSync(command, args, {
      cwd,
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...process.env, ...env },
    })
  } catch (error) {
    const e = error as { stdout?: string; stderr?: string }
    throw new Error(`${command} ${args.join(' ')} failed:\n${e.stdout ?? ''}${e.stderr ?? ''}`)
  }
}

/** The copy's manifests, by package name. */
function manifests(): Map<string, Manifest> {
  return new Map(
    publicDirs.map((d) => {
      const m = readJson<Manifest>(join(copy, 'packages', d, 'package.json'))
      return [m.name, m]
    }),
  )
}

function addChangeset(file: string, bumps: Record<string, 'patch' | 'minor'>, summary: string): void {
  const front = Object.entries(bumps).map(([name, bump]) => `"${name}": ${bump}`)
  writeFileSync(join(copy, '.changeset', file), `---\n${front.join('\n')}\n---\n\n${summary}\n`)
}

// Provenance needs a CI identity (OIDC) that this machine does not have; everything else is the
// real command.
// changesets asks the registry what is published through npm_config_registry (or publishConfig),
// not .npmrc: without it, it would ask registry.npmjs.org.
const release = (step: 'version' | 'publish') =>
  sh(changeset, [step], copy, {
    npm_config_registry: registry.url,
    NPM_CONFIG_PROVENANCE: 'false',
    npm_config_provenance: 'false',
  })

const published = (name: string): Manifest & { versions: string[] } =>
  JSON.parse(sh('npm', ['view', name, '--json', '--registry', registry.url], work))

beforeAll(async () => {
  registry = await startLocalRegistry()
  work = mkdtempSync(join(tmpdir(), 'rp-release-work-'))
  copy = mkdtempSync(join(tmpdir(), 'rp-release-repo-'))
  const files = execFileSync('git', ['ls-files', '--cached', '--others', '--exclude-standard', '-z'], {
    cwd: root,
    encoding: 'utf8',
  })
    .split('\0')
    .filter((f) => f && existsSync(join(root, f)))
  for (const f of files) {
    mkdirSync(dirname(join(copy, f)), { recursive: true })
    cpSync(join(root, f), join(copy, f))
  }
  // What `pnpm test` built before this runs: the release publishes it.
  for (const d of publicDirs)
    cpSync(join(root, 'packages', d, 'dist'), join(copy, 'packages', d, 'dist'), { recursive: true })
  // Start from a clean slate: this repository's own pending changesets are not this test's.
  for (const f of readdirSync(join(copy, '.changeset')))
    if (f.endsWith('.md') && f !== 'README.md') rmSync(join(copy, '.changeset', f))
  // pnpm publish turns `workspace:^` into the linked package's version, so it needs the links (and
  // only them: no install).
  const dirsByName = new Map(
    readdirSync(join(copy, 'packages')).map((d) => [
      readJson<Manifest>(join(copy, 'packages', d, 'package.json')).name,
      d,
    ]),
  )
  for (const d of publicDirs) {
    const m = readJson<Manifest & { devDependencies?: Record<string, string> }>(
      join(copy, 'packages', d, 'package.json'),
    )
    for (const [dep, spec] of Object.entries({
      ...m.dependencies,
      ...m.devDependencies,
      ...m.peerDependencies,
    })) {
      if (!spec.startsWith('workspace:')) continue
      mkdirSync(join(copy, 'packages', d, 'node_modules', '@rp'), { recursive: true })
      symlinkSync(
        join(copy, 'packages', dirsByName.get(dep)!),
        join(copy, 'packages', d, 'node_modules', dep),
      )
    }
  }
  // `pnpm release` runs the tools through `pnpm exec`: the copy borrows the workspace's.
  symlinkSync(join(root, 'node_modules'), join(copy, 'node_modules'))
  writeFileSync(join(copy, '.npmrc'), registry.npmrc)
  for (const [cmd, ...args] of [
    ['git', 'init', '-q', '-b', 'main'],
    ['git', 'add', '-A'],
    ['git', '-c', 'user.name=release', '-c', 'user.email=release@example.invalid', 'commit', '-qm', 'copy'],
  ])
    sh(cmd!, args, copy)
  // Every package at its current version, so later steps publish only what they bump.
  release('publish')
}, 180_000)

afterAll(async () => {
  // The figures the root README's package table quotes.
  const kb = (n?: number) => (n === undefined ? 'n/a' : `${(n / 1024).toFixed(1)} kB`)
  console.log(
    [
      '| package | packed | unpacked | install footprint (with ioredis) | dependencies beyond core and ioredis |',
      ...[...report].map(
        ([name, r]) =>
          `| ${name} | ${kb(r.packed)} | ${kb(r.unpacked)} | ${kb(r.footprint)} | ${r.extra?.join(', ') || 'none'} |`,
      ),
    ].join('\n'),
  )
  await registry?.stop()
  for (const dir of [copy, work]) if (dir) rmSync(dir, { recursive: true, force: true })
})

describe('release', () => {
  it('publishes every public package to the registry', () => {
    for (const name of names) expect(published(name).versions).toEqual([manifests().get(name)!.version])
  })

  it('a minor changeset for @rp/ratelimit bumps and publishes only @rp/ratelimit, with its changelog entry', () => {
    const before = manifests()
    addChangeset('ratelimit-minor.md', { '@rp/ratelimit': 'minor' }, 'Release test: a ratelimit feature.')

    // `pnpm release --dry-run` says what a release would do and changes nothing; `pnpm release`
    // refuses a working tree with uncommitted changes (here the new changeset) before it changes
    // anything, rather than failing halfway.
    const releaseScript = (...args: string[]) =>
      sh(tsx, ['scripts/release.ts', ...args], copy, { npm_config_registry: registry.url })
    const status = () => sh('git', ['status', '--porcelain'], copy)
    const dirty = status()
    const plan = releaseScript('--dry-run')
    expect(plan).toMatch(/@rp\/ratelimit[^\n]*0\.2\.0|0\.2\.0[^\n]*@rp\/ratelimit/)
    expect(plan).toContain(`on the registry  @rp/ratelimit@${before.get('@rp/ratelimit')!.version}`)
    expect(status()).toBe(dirty)
    expect(() => releaseScript()).toThrow(/uncommitted changes/)
    expect(status()).toBe(dirty)
    expect(manifests()).toEqual(before)

    release('version')
    const after = manifests()
    for (const name of names) {
      if (name === '@rp/ratelimit') {
        expect(after.get(name)!.version).toBe(bumped(before.get(name)!.version, 'minor'))
      } else {
        expect(after.get(name)).toEqual(before.get(name))
        expect(existsSync(join(copy, 'packages', dirOf(name), 'CHANGELOG.md'))).toBe(false)
      }
    }
    const changelog = readFileSync(join(copy, 'packages/ratelimit/CHANGELOG.md'), 'utf8')
    expect(changelog).toContain(`## ${after.get('@rp/ratelimit')!.version}`)
    expect(changelog).toContain('Release test: a ratelimit feature.')
    release('publish')
    for (const name of names)
      expect(published(name).versions).toEqual(
        name === '@rp/ratelimit'
          ? [before.get(name)!.version, after.get(name)!.version]
          : [before.get(name)!.version],
      )
  })

  it('a minor changeset for @rp/core patches every dependent, with the new range, and nothing goes major', () => {
    const before = manifests()
    addChangeset('core-minor.md', { '@rp/core': 'minor' }, 'Release test: a core feature.')
    release('version')
    const after = manifests()
    const core = after.get('@rp/core')!.version
    expect(core).toBe(bumped(before.get('@rp/core')!.version, 'minor'))
    for (const name of names) {
      if (name === '@rp/core') continue
      expect(after.get(name)!.version).toBe(bumped(before.get(name)!.version, 'patch'))
    }
    release('publish')
    for (const name of names) {
      const latest = published(name)
      expect(latest.version).toBe(after.get(name)!.version)
      expect(latest.version.split('.')[0]).toBe(before.get(name)!.version.split('.')[0])
      // workspace:^ became a real range, which the new core satisfies.
      if (name !== '@rp/core') expect(latest.dependencies?.['@rp/core']).toBe(`^${core}`)
    }
  })

  it.each(names)(
    'the %s tarball holds dist, README, CHANGELOG, LICENSE and package.json, and nothing else',
    (name) => {
      const version = manifests().get(name)!.version
      const [pack] = JSON.parse(
        sh('npm', ['pack', `${name}@${version}`, '--dry-run', '--json', '--registry', registry.url], work),
      ) as Array<{ files: Array<{ path: string }>; size: number; unpackedSize: number }>
      report.set(name, { ...report.get(name), packed: pack!.size, unpacked: pack!.unpackedSize })
      // A budget, so the package cannot grow unnoticed (the README's table quotes the figures).
      expect(pack!.unpackedSize).toBeLessThan(UNPACKED_BUDGET_BYTES)
      const paths = pack!.files.map((f) => f.path)
      for (const required of ['README.md', 'CHANGELOG.md', 'LICENSE', 'package.json'])
        expect(paths).toContain(required)
      expect(paths.some((p) => p.startsWith('dist/'))).toBe(true)
      expect(
        paths.filter(
          (p) => !/^(dist\/.+\.(c?js|d\.c?ts)|README\.md|CHANGELOG\.md|LICENSE|package\.json)$/.test(p),
        ),
      ).toEqual([])
    },
  )

  it.each(names)(
    '%s installs alone from the registry, then loads from CJS, ESM and tsc, and makes a real call',
    (name) => {
      const project = mkdtempSync(join(work, 'user-'))
      const cache = mkdtempSync(join(work, 'cache-'))
      const npm = (...args: string[]) =>
        sh(
          'npm',
          [
            ...args,
            '--registry',
            registry.url,
            '--cache',
            cache,
            '--no-audit',
            '--no-fund',
            '--loglevel=error',
          ],
          project,
        )
      writeFileSync(join(project, 'package.json'), JSON.stringify({ name: 'user', private: true }))
      npm('install', name, 'ioredis')

      // Only the package, @rp/core and what they and ioredis depend on at run time arrived.
      const installed = installedPackages(project)
      const expected = closure(installed, [name, 'ioredis'])
      expect([...installed.keys()].filter((p) => !expected.has(p)).sort()).toEqual([])
      expect([...installed.keys()].filter((p) => p.startsWith('@rp/')).sort()).toEqual(
        [...new Set([name, '@rp/core'])].sort(),
      )
      // What the package brings beyond ioredis: its own code, core, and at most these.
      const ioredisOnly = closure(installed, ['ioredis'])
      const extra = [...closure(installed, [name])].filter(
        (p) => !ioredisOnly.has(p) && !p.startsWith('@rp/'),
      )
      expect(extra.filter((d) => !(allowedDependencies[name] ?? []).includes(d))).toEqual([])
      report.set(name, { ...report.get(name), footprint: bytesUnder(join(project, 'node_modules')), extra })

      // A subpath adapter needs its framework, as its user has it: the optional peers.
      const manifest = installed.get(name)!
      const peers = Object.entries(manifest.peerDependencies ?? {}).filter(([peer]) => peer !== 'ioredis')
      // The type check needs Node's types, as any TypeScript user of a Node library has them.
      npm('install', `@types/node@${typesNode}`, ...peers.map(([peer, range]) => `${peer}@${range}`))
      const entries = Object.getOwnPropertyNames(manifest.exports ?? { '.': null })
        .filter((k) => k !== './package.json')
        .map((k) => (k === '.' ? name : `${name}/${k.slice(2)}`))
      const body = (load: (specifier: string) => string) => `
const { Redis } = ${load("'ioredis'")}
const redis = new Redis(process.env.REDIS_URL)
const prefix = 'release-' + process.pid + '-' + Date.now()
const main = async () => {
  for (const e of ${JSON.stringify(entries)}) {
    const mod = ${load('e')}
    if (Object.keys(mod).filter((k) => k !== 'default' && k !== '__esModule').length === 0) throw new Error('no exports in ' + e)
  }
  const m = ${load(`'${name}'`)}
  try { ${realCall[name]} } finally { redis.disconnect() }
}
`
      writeFileSync(
        join(project, 'check.cjs'),
        `${body((s) => `require(${s})`)}main().then(() => console.log('ok'), (e) => { console.error(e); process.exit(1) })\n`,
      )
      writeFileSync(
        join(project, 'check.mjs'),
        `${body((s) => `(await import(${s}))`)}await main(); console.log('ok')\n`,
      )
      const env = { REDIS_URL: inject('rpRedisUrl') }
      expect(sh('node', ['check.cjs'], project, env).trim()).toBe('ok')
      expect(sh('node', ['check.mjs'], project, env).trim()).toBe('ok')

      const typed = entries
        .map(
          (e, i) => `import * as m${i} from '${e}'\nexport const names${i}: string[] = Object.keys(m${i})\n`,
        )
        .join('')
      writeFileSync(join(project, 'check-esm.mts'), typed)
      writeFileSync(join(project, 'check-cjs.cts'), typed)
      writeFileSync(join(project, 'check-bundler.ts'), typed)
      // The adapters' declarations name express, fastify and hono types; skipLibCheck as a user of
      // one adapter would, who has that framework's types and not the others'.
      const common = ['--noEmit', '--strict', '--skipLibCheck', '--types', 'node']
      sh(
        'node',
        [
          tsc,
          ...common,
          '--module',
          'node16',
          '--moduleResolution',
          'node16',
          'check-esm.mts',
          'check-cjs.cts',
        ],
        project,
      )
      sh(
        'node',
        [tsc, ...common, '--module', 'esnext', '--moduleResolution', 'bundler', 'check-bundler.ts'],
        project,
      )
    },
  )
})

/** No package's own code may pass this unpacked (core is about 300 kB, the others under 170 kB, README included). */
const UNPACKED_BUDGET_BYTES = 400 * 1024

/** Besides @rp/core and ioredis's own tree, the most each package may bring in. */
const allowedDependencies: Record<string, string[]> = {
  '@rp/core': [],
  '@rp/ratelimit': ['nanoid'],
  '@rp/lock': ['nanoid'],
  '@rp/session': ['nanoid'],
  '@rp/pubsub': ['nanoid'],
  '@rp/leaderboard': ['nanoid'],
  '@rp/cache': ['nanoid', 'lru-cache'],
}

const report = new Map<string, { packed?: number; unpacked?: number; footprint?: number; extra?: string[] }>()

function bytesUnder(dir: string): number {
  return Number(sh('du', ['-sb', dir], dir).split('\t')[0])
}

function dirOf(name: string): string {
  return publicDirs.find((d) => readJson<Manifest>(join(root, 'packages', d, 'package.json')).name === name)!
}

function bumped(version: string, bump: 'patch' | 'minor'): string {
  const [major, minor, patch] = version.split('.').map(Number) as [number, number, number]
  return bump === 'minor' ? `${major}.${minor + 1}.0` : `${major}.${minor}.${patch + 1}`
}

/** Every package in node_modules (hoisted or nested), by name. */
function installedPackages(project: string): Map<string, Manifest> {
  const out = new Map<string, Manifest>()
  const visit = (modules: string) => {
    if (!existsSync(modules)) return
    for (const entry of readdirSync(modules)) {
      if (entry.startsWith('.')) continue
      const dirs = entry.startsWith('@')
        ? readdirSync(join(modules, entry)).map((e) => join(entry, e))
        : [entry]
      for (const dir of dirs) {
        const file = join(modules, dir, 'package.json')
        if (!existsSync(file)) continue
        const m = readJson<Manifest>(file)
        out.set(m.name, m)
        visit(join(modules, dir, 'node_modules'))
      }
    }
  }
  visit(join(project, 'node_modules'))
  return out
}

/** The packages `roots` need at run time: dependencies, required peers, installed optional dependencies. */
function closure(installed: Map<string, Manifest>, roots: string[]): Set<string> {
  const seen = new Set<string>()
  const stack = [...roots]
  while (stack.length > 0) {
    const name = stack.pop()!
    if (seen.has(name) || !installed.has(name)) continue
    seen.add(name)
    const m = installed.get(name)!
    const optionalPeer = (peer: string) => m.peerDependenciesMeta?.[peer]?.optional === true
    stack.push(
      ...Object.keys(m.dependencies ?? {}),
      ...Object.keys(m.optionalDependencies ?? {}),
      ...Object.keys(m.peerDependencies ?? {}).filter((p) => !optionalPeer(p)),
    )
  }
  return seen
}
