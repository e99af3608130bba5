/**
 * Proves a user can install one package alone: each publishable package is packed, installed with
 * only @rp/core's tarball and ioredis into a fresh project outside the workspace, then loaded with
 * require(), with import, and type-checked from both module systems.
 */
import { execFileSync } from 'node:child_process'
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join, resolve } from 'node:path'

const root = resolve(import.meta.dirname, '../../..')
const packagesDir = join(root, 'packages')
const work = mkdtempSync(join(tmpdir(), 'rp-install-alone-'))
const run = (cmd: string, args: string[], cwd: string) =>
  execFileSync(cmd, args, { cwd, stdio: ['ignore', 'pipe', 'pipe'], encoding: 'utf8' })

interface Manifest {
  name: string
  private?: boolean
  version: string
  exports?: Record<string, unknown>
  peerDependencies?: Record<string, string>
}
const manifest = (dir: string): Manifest => JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8'))

const publishable = readdirSync(packagesDir)
  .map((d) => join(packagesDir, d))
  .filter((d) => !manifest(d).private)

// Every entry point a user can import: the main one and each subpath (`@rp/ratelimit/express`, …).
const entryPoints = new Map<string, string[]>()
const tarballs = new Map<string, string>()
const manifestByName = new Map<string, Manifest>()
for (const dir of publishable) {
  const m = manifest(dir)
  manifestByName.set(m.name, m)
  entryPoints.set(
    m.name,
    Object.getOwnPropertyNames(m.exports ?? { '.': null })
      .filter((k) => k !== './package.json')
      .map((k) => (k === '.' ? m.name : `${m.name}/${k.slice(2)}`)),
  )
  const out = run('pnpm', ['pack', '--pack-destination', work, '--json'], dir)
  const parsed = JSON.parse(out.slice(out.indexOf('{'))) as { filename: string }
  tarballs.set(manifest(dir).name, resolve(work, parsed.filename))
}

const rootManifest = JSON.parse(readFileSync(join(root, 'packages/core/package.json'), 'utf8'))
const ioredisRange: string = rootManifest.devDependencies.ioredis
const typesNode: string = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')).devDependencies[
  '@types/node'
]
const tsc = join(root, 'node_modules/typescript/bin/tsc')

// A command-line report, written to stdout directly.
const say = (line: string) => process.stdout.write(`${line}\n`)

let failures = 0
for (const [name, tarball] of tarballs) {
  const project = mkdtempSync(join(work, 'probe-'))
  const dependencies: Record<string, string> = {
    [name]: `file:${tarball}`,
    ioredis: ioredisRange,
    '@types/node': typesNode,
  }
  dependencies['@rp/core'] = `file:${tarballs.get('@rp/core')}`
  // A subpath adapter needs its framework at run time (@rp/session/express extends
  // express-session's Store), as its user has it: install the optional peers at their ranges.
  const peers = manifestByName.get(name)!.peerDependencies ?? {}
  for (const peer in peers) if (peer !== 'ioredis') dependencies[peer] = peers[peer]!
  writeFileSync(
    join(project, 'package.json'),
    JSON.stringify({ name: 'probe', private: true, dependencies }, null, 2),
  )
  const entries = JSON.stringify(entryPoints.get(name))
  writeFileSync(
    join(project, 'check.cjs'),
    `const out = {}; for (const e of ${entries}) { const m = require(e); const names = Object.getOwnPropertyNames(m).filter((k) => k !== '__esModule'); if (names.length === 0) throw new Error('no exports in ' + e); out[e] = names.sort() } process.stdout.write(JSON.stringify(out))`,
  )
  writeFileSync(
    join(project, 'check.mjs'),
    `const out = {}; for (const e of ${entries}) { const m = await import(e); out[e] = Object.getOwnPropertyNames(m).filter((k) => k !== 'default').sort() } process.stdout.write(JSON.stringify(out))`,
  )
  const typed = entryPoints
    .get(name)!
    .map(
      (e, i) =>
        `import * as m${i} from '${e}'\nexport const names${i}: string[] = Object.getOwnPropertyNames(m${i})\n`,
    )
    .join('')
  writeFileSync(join(project, 'check-esm.mts'), typed)
  writeFileSync(join(project, 'check-cjs.cts'), typed)
  try {
    run('npm', ['install', '--no-audit', '--no-fund', '--ignore-scripts', '--loglevel=error'], project)
    const cjs = run('node', ['check.cjs'], project).trim()
    const esm = run('node', ['check.mjs'], project).trim()
    if (cjs !== esm) throw new Error(`CJS and ESM export different names:\n  cjs ${cjs}\n  esm ${esm}`)
    run(
      'node',
      [
        tsc,
        '--noEmit',
        '--strict',
        // The framework adapters' declarations name express, fastify and hono types; a user of
        // one adapter installs that framework, not all three.
        '--skipLibCheck',
        '--module',
        'nodenext',
        '--moduleResolution',
        'nodenext',
        '--types',
        'node',
        'check-esm.mts',
        'check-cjs.cts',
      ],
      project,
    )
    const counts = Object.entries(JSON.parse(cjs) as Record<string, string[]>)
      .map(([e, names]) => `${e} ${names.length}`)
      .join(', ')
    say(`ok   ${name}: require, import and types (exports: ${counts})`)
  } catch (error) {
    failures++
    const e = error as { message: string; stdout?: string; stderr?: string }
    say(`FAIL ${name}: ${e.message}\n${e.stdout ?? ''}${e.stderr ?? ''}`)
  }
}
rmSync(work, { recursive: true, force: true })
say(`install-alone: ${tarballs.size - failures} passed, ${failures} failed`)
process.exit(failures > 0 ? 1 : 0)
