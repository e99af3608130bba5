/**
 * `pnpm release`: versions every package that has a pending changeset (`changeset version`: the
 * bumps, the CHANGELOG entries, the dependents' ranges), builds, then publishes whatever version
 * the registry does not have yet (`changeset publish`, which packs with pnpm, so `workspace:^`
 * becomes a real range and `publishConfig` applies). The settings are `.changeset/config.json`'s.
 *
 * Before it changes anything it checks what would make it fail halfway: a clean working tree, a
 * registry login, and, since every package asks for npm provenance, a CI identity (GitHub Actions
 * OIDC). `--no-provenance` publishes without it, from a maintainer's machine.
 *
 * `pnpm release --dry-run` changes nothing: it prints the bumps and new versions the pending
 * changesets make, and which current versions the registry lacks.
 */
import { execFileSync } from 'node:child_process'
import { readdirSync, readFileSync } from 'node:fs'
import { join } from 'node:path'

const args = new Set(process.argv.slice(2))
const dryRun = args.has('--dry-run')
const provenance = !args.has('--no-provenance')
const root = join(import.meta.dirname, '..')
const run = (command: string, argv: string[], env: NodeJS.ProcessEnv = {}) =>
  execFileSync(command, argv, { cwd: root, stdio: 'inherit', env: { ...process.env, ...env } })
const quiet = (command: string, argv: string[]) =>
  execFileSync(command, argv, { cwd: root, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] })
const fail = (why: string): never => {
  process.stderr.write(`release: ${why}\n`)
  process.exit(1)
}

const published = readdirSync(join(root, 'packages'))
  .map(
    (d) =>
      JSON.parse(readFileSync(join(root, 'packages', d, 'package.json'), 'utf8')) as {
        name: string
        version: string
        private?: boolean
      },
  )
  .filter((m) => !m.private)
const registryArgs = process.env.npm_config_registry ? ['--registry', process.env.npm_config_registry] : []

if (dryRun) {
  run('pnpm', ['exec', 'changeset', 'status', '--verbose'])
  for (const m of published) {
    let onRegistry = false
    try {
      onRegistry =
        quiet('npm', ['view', `${m.name}@${m.version}`, 'version', ...registryArgs]).trim() === m.version
    } catch {}
    process.stdout.write(`${onRegistry ? 'on the registry' : 'would publish  '}  ${m.name}@${m.version}\n`)
  }
  process.exit(0)
}

if (quiet('git', ['status', '--porcelain']).trim() !== '')
  fail('the working tree has uncommitted changes; commit them (changesets included) first')
if (provenance && !process.env.ACTIONS_ID_TOKEN_REQUEST_URL)
  fail(
    'npm provenance needs a CI identity (GitHub Actions with id-token: write); run this in CI, or pass --no-provenance',
  )
try {
  quiet('npm', ['whoami', ...registryArgs])
} catch {
  fail('not logged in to the registry (npm login)')
}
run('pnpm', ['exec', 'changeset', 'version'])
run('pnpm', ['exec', 'turbo', 'run', 'build', '--output-logs=errors-only'])
run('pnpm', ['exec', 'changeset', 'publish'], provenance ? {} : { npm_config_provenance: 'false' })
