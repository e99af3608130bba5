import { type ChildProcess, spawn } from 'node:child_process'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import { freePort } from './free-port.js'

export interface LocalRegistry {
  /** e.g. `http://127.0.0.1:4873/` */
  url: string
  /** A token of a user allowed to publish. */
  token: string
  /** `.npmrc` lines that point npm and pnpm at this registry with that token. */
  npmrc: string
  stop(): Promise<void>
}

const verdaccioBin = resolve(import.meta.dirname, '../node_modules/.bin/verdaccio')

/**
 * A real npm registry (Verdaccio) on a free loopback port, with a throwaway storage folder: `@rp/*`
 * is published here, everything else is proxied from registry.npmjs.org (and cached in the
 * storage folder, so a second install of ioredis stays local).
 */
export async function startLocalRegistry(): Promise<LocalRegistry> {
  const home = mkdtempSync(join(tmpdir(), 'rp-registry-'))
  const port = await freePort()
  const url = `http://127.0.0.1:${port}/`
  writeFileSync(
    join(home, 'config.yaml'),
    `storage: ${join(home, 'storage')}
auth:
  htpasswd:
    file: ${join(home, 'htpasswd')}
    max_users: 10
uplinks:
  npmjs:
    url: https://registry.npmjs.org/
    timeout: 60s
packages:
  '@rp/*':
    access: $all
    publish: $authenticated
  '**':
    access: $all
    proxy: npmjs
log: { type: stdout, format: pretty, level: error }
`,
  )
  const child: ChildProcess = spawn(
    verdaccioBin,
    ['--config', join(home, 'config.yaml'), '--listen', `127.0.0.1:${port}`],
    {
      stdio: ['ignore', 'pipe', 'pipe'],
    },
  )
  let output = ''
  child.stdout?.on('data', (d) => (output += d))
  child.stderr?.on('data', (d) => (output += d))
  const stop = async () => {
    if (child.exitCode === null) {
      const exited = new Promise((r) => child.once('exit', r))
      child.kill('SIGTERM')
      await exited
    }
    rmSync(home, { recursive: true, force: true })
  }
  try {
    const deadline = Date.now() + 30_000
    for (;;) {
      if (child.exitCode !== null) throw new Error(`verdaccio exited: ${output}`)
      const up = await fetch(`${url}-/ping`).then(
        (r) => r.ok,
        () => false,
      )
      if (up) break
      if (Date.now() > deadline) throw new Error(`verdaccio did not answer within 30 s: ${output}`)
      await new Promise((r) => setTimeout(r, 100))
    }
    // The CouchDB user endpoint npm's adduser calls: creates the user and answers its token.
    const added = await fetch(`${url}-/user/org.couchdb.user:release`, {
      method: 'PUT',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ name: 'release', password: 'release-test-password' }),
    })
    const { token } = (await added.json()) as { token?: string }
    if (!token) throw new Error(`verdaccio gave no token (${added.status})`)
    const host = url.replace(/^http:/, '')
    return { url, token, npmrc: `registry=${url}\n${host}:_authToken=${token}\n`, stop }
  } catch (error) {
    await stop()
    throw error
  }
}
