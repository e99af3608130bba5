/**
 * `pnpm release`: versions every package that has a pending changeset (`changeset version`: the
 * bumps, the CHANGELOG entries, the dependents' ranges), builds, then publishes whatever version
 * the registry does not have yet (`changeset publish`, which packs with pnpm, so `workspace:^`
 * becomes a real range and `publishConfig` applies). The settings are `.changeset/config.json`'s.
 *
 * `pnpm release --dry-run` changes nothing: it prints the packages a release would publish, with
 * their bump and new version.
 */
import { execFileSync } from 'node:child_process'

const dryRun = process.argv.includes('--dry-run')
const run = (command: string, args: string[]) =>
  execFileSync(command, args, { stdio: 'inherit', env: process.env })

if (dryRun) {
  run('pnpm', ['exec', 'changeset', 'status', '--verbose'])
} else {
  run('pnpm', ['exec', 'changeset', 'version'])
  run('pnpm', ['exec', 'turbo', 'run', 'build', '--output-logs=errors-only'])
  run('pnpm', ['exec', 'changeset', 'publish'])
}
