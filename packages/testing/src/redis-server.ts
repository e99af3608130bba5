import { type ChildProcess, spawn, spawnSync } from 'node:child_process'
import { mkdtempSync, rmSync } from 'node:fs'
import { connect } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { freePort } from './free-port.js'

/** A Redis server the harness controls: every fault a test needs is one call. */
export interface RedisServer {
  readonly host: string
  readonly port: number
  readonly url: string
  /** Where the server came from: a local binary, a Docker container, or an external URL. */
  readonly source: 'binary' | 'docker' | 'external'
  /** Graceful stop; the server is gone afterwards. */
  stop(): Promise<void>
  /** SIGKILL: the abrupt death of the server, nothing flushed. */
  kill(): Promise<void>
  /** Start again on the same port after kill() or stop(); data is gone (persistence is off). */
  restart(): Promise<void>
  /** SIGSTOP: the server holds connections open but answers nothing, like a stuck or overloaded host. */
  pause(): Promise<void>
  resume(): Promise<void>
}

export interface BinaryServerOptions {
  port?: number
  /** Extra `--name value` arguments for redis-server. */
  args?: string[]
  cluster?: boolean
}

export function redisServerBinary(): string | null {
  const found = spawnSync('sh', ['-c', 'command -v redis-server'], { encoding: 'utf8' })
  const path = found.stdout.trim()
  return found.status === 0 && path ? path : null
}

/** Resolves once the server answers PING, so callers never race its startup. */
export async function waitForPing(host: string, port: number, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs
  while (Date.now() < deadline) {
    const ok = await new Promise<boolean>((resolve) => {
      const socket = connect(port, host)
      let reply = ''
      const done = (value: boolean) => {
        socket.destroy()
        resolve(value)
      }
      socket.setTimeout(500, () => done(false))
      socket.once('error', () => done(false))
      socket.once('connect', () => socket.write('PING\r\n'))
      socket.on('data', (chunk) => {
        reply += chunk.toString()
        if (reply.includes('\r\n')) done(reply.startsWith('+PONG'))
      })
    })
    if (ok) return
    await new Promise((r) => setTimeout(r, 50))
  }
  throw new Error(`redis at ${host}:${port} did not answer PING within ${timeoutMs} ms`)
}

/**
 * A watchdog shell per server kills redis-server once this Node process is gone, so a crashed
 * or killed test run leaves no servers behind.
 */
function startWatchdog(serverPid: number): ChildProcess {
  const watchdog = spawn(
    'sh',
    [
      '-c',
      'while kill -0 "$0" 2>/dev/null && kill -0 "$1" 2>/dev/null; do sleep 1; done; kill -9 "$1" 2>/dev/null',
      String(process.pid),
      String(serverPid),
    ],
    { detached: true, stdio: 'ignore' },
  )
  watchdog.unref()
  return watchdog
}

export async function startBinaryServer(options: BinaryServerOptions = {}): Promise<RedisServer> {
  const binary = redisServerBinary()
  if (!binary) throw new Error('redis-server is not on PATH')
  const host = '127.0.0.1'
  const port = options.port ?? (await freePort({ withBusPort: options.cluster === true }))
  const dir = mkdtempSync(join(tmpdir(), `rp-redis-${port}-`))
  const args = [
    '--port',
    String(port),
    '--bind',
    host,
    '--save',
    '',
    '--appendonly',
    'no',
    '--dir',
    dir,
    '--daemonize',
    'no',
    '--loglevel',
    'warning',
    '--logfile',
    join(dir, 'redis.log'),
    ...(options.cluster
      ? ['--cluster-enabled', 'yes', '--cluster-config-file', 'nodes.conf', '--cluster-node-timeout', '1500']
      : []),
    ...(options.args ?? []),
  ]

  let child: ChildProcess | null = null
  let watchdog: ChildProcess | null = null
  let exited: Promise<void> = Promise.resolve()

  const launch = async () => {
    // A restarted cluster node must not rejoin with its old identity: tests expect a fresh node.
    rmSync(join(dir, 'nodes.conf'), { force: true })
    const proc = spawn(binary, args, { stdio: 'ignore' })
    child = proc
    exited = new Promise((resolve) => proc.once('exit', () => resolve()))
    if (proc.pid === undefined) throw new Error('failed to spawn redis-server')
    watchdog = startWatchdog(proc.pid)
    await waitForPing(host, port)
  }
  const signal = async (sig: NodeJS.Signals) => {
    const proc = child
    if (!proc || proc.exitCode !== null || proc.signalCode !== null) return
    proc.kill(sig)
    if (sig === 'SIGKILL' || sig === 'SIGTERM') {
      await exited
      watchdog?.kill('SIGKILL')
      child = null
    }
  }

  await launch()
  return {
    host,
    port,
    url: `redis://${host}:${port}`,
    source: 'binary',
    async stop() {
      await signal('SIGCONT')
      await signal('SIGTERM')
      rmSync(dir, { recursive: true, force: true })
    },
    kill: () => signal('SIGKILL'),
    async restart() {
      await signal('SIGKILL')
      await launch()
    },
    pause: () => signal('SIGSTOP'),
    resume: () => signal('SIGCONT'),
  }
}
