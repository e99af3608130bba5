import { spawn } from 'node:child_process'
import { connect } from 'node:net'
import { fileURLToPath } from 'node:url'
import { freePort } from '@rp/testing'
import { expect, it } from 'vitest'

/** Whether nothing listens on the port any more. */
const closed = (port: number) =>
  new Promise<boolean>((resolve) => {
    const socket = connect(port, '127.0.0.1')
    socket.once('connect', () => {
      socket.destroy()
      resolve(false)
    })
    socket.once('error', () => resolve(true))
  })

// `pnpm start -- --instances 2` as a newcomer runs it: an embedded Redis, two apps and the worker,
// then SIGTERM stops all of it and exits 0.
it('starts two instances and the worker on an embedded Redis, and stops them all on SIGTERM', async () => {
  // Two consecutive free ports: the second instance listens on port + 1.
  let port = await freePort()
  for (let i = 0; i < 20 && !(await closed(port + 1)); i++) port = await freePort()
  const main = spawn(
    process.execPath,
    [
      '--import',
      'tsx',
      '--conditions=@rp/source',
      'src/main.ts',
      '--',
      '--instances',
      '2',
      '--port',
      String(port),
    ],
    {
      cwd: fileURLToPath(new URL('..', import.meta.url)),
      env: { ...process.env, REDIS_URL: '', REDIS_CLUSTER_NODES: '', REDIS_SENTINELS: '' },
    },
  )
  let output = ''
  main.stdout.on('data', (chunk: Buffer) => {
    output += chunk.toString()
  })
  main.stderr.on('data', (chunk: Buffer) => {
    output += chunk.toString()
  })
  const exited = new Promise<number | null>((resolve) => main.once('exit', (code) => resolve(code)))
  try {
    await expect.poll(() => output, { timeout: 60_000, interval: 100 }).toMatch(/\[arcade\] ready:/)
    const redisPort = Number(/embedded Redis \(binary\) on redis:\/\/127\.0\.0\.1:(\d+)/.exec(output)?.[1])
    expect(redisPort).toBeGreaterThan(0)
    for (const [offset, instance] of [
      [0, 'A'],
      [1, 'B'],
    ] as const) {
      const res = await fetch(`http://127.0.0.1:${port + offset}/api/status`)
      expect(res.status).toBe(200)
      expect(await res.json()).toMatchObject({ instance, redis: { ok: true } })
    }
    main.kill('SIGTERM')
    expect(await exited).toBe(0)
    expect(output).toMatch(/\[worker worker\] shutting down: finishing and acknowledging/)
    // Everything is gone: both apps and the embedded Redis.
    for (const p of [port, port + 1, redisPort]) expect(await closed(p)).toBe(true)
  } finally {
    main.kill('SIGKILL')
  }
}, 90_000)
