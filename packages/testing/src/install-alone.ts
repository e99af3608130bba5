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
}
const manifest = (dir: string): Manifest => JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8'))

const publishable = readdirSync(packagesDir)
  .map((d) => join(packagesDir, d))
  .filter((d) => !manifest(d).private)

const tarballs = new Map<string, string>()
for (const dir of publishable) {
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
  writeFileSync(
    join(project, 'package.json'),
    JSON.stringify({ name: 'probe', private: true, dependencies }, null, 2),
  )
  writeFileSync(
    join(project, 'check.cjs'),
    `const m = require('${name}'); const names = Object.getOwnPropertyNames(m).filter((k) => k !== '__esModule'); if (names.length === 0) throw new Error('no exports'); process.stdout.write(JSON.stringify(names.sort()))`,
  )
  writeFileSync(
    join(project, 'check.mjs'),
    `const m = await import('${name}'); process.stdout.write(JSON.stringify(Object.getOwnPropertyNames(m).filter((k) => k !== 'default').sort()))`,
  )
  const typed = `import * as pkg from '${name}'\nexport const names: string[] = Object.getOwnPropertyNames(pkg)\n`
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
    say(`ok   ${name}: require, import and types (${JSON.parse(cjs).length} exports)`)
  } catch (error) {
    failures++
    const e = error as { message: string; stdout?: string; stderr?: string }
    say(`FAIL ${name}: ${e.message}\n${e.stdout ?? ''}${e.stderr ?? ''}`)
  }
}
rmSync(work, { recursive: true, force: true })
say(`install-alone: ${tarballs.size - failures} passed, ${failures} failed`)
process.exit(failures > 0 ? 1 : 0)
