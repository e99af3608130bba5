import { type ChildProcess, fork } from 'node:child_process'
import { fileURLToPath } from 'node:url'

const SERVE = fileURLToPath(new URL('./serve.ts', import.meta.url))

export interface ArcadeProcess {
  readonly role: 'app' | 'worker'
  readonly child: ChildProcess
  /** Resolves when the process exits, with its code or signal. */
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>
}

/**
 * Starts one arcade process (TypeScript through tsx, the packages from source) and resolves once it
 * reports ready. `env` adds to this process's environment: REDIS_*, PORT, ARCADE_INSTANCE, …
 */
export function spawnArcade(
  role: 'app' | 'worker',
  env: Record<string, string>,
  options: { silent?: boolean; timeoutMs?: number } = {},
): Promise<ArcadeProcess> {
  const child = fork(SERVE, [role], {
    env: { ...process.env, ...env },
    execArgv: ['--import', 'tsx', '--conditions=@rp/source'],
    stdio: options.silent ? ['ignore', 'ignore', 'pipe', 'ipc'] : ['ignore', 'inherit', 'inherit', 'ipc'],
  })
  let stderr = ''
  child.stderr?.on('data', (chunk: Buffer) => {
    stderr = (stderr + chunk.toString()).slice(-4_000)
  })
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.once('exit', (code, signal) => resolve({ code, signal })),
  )
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill('SIGKILL')
      reject(new Error(`${role} did not start within ${options.timeoutMs ?? 30_000} ms\n${stderr}`))
    }, options.timeoutMs ?? 30_000)
    child.on('message', (message: { ready?: boolean }) => {
      if (!message?.ready) return
      clearTimeout(timer)
      resolve({ role, child, exited })
    })
    exited.then(({ code, signal }) => {
      clearTimeout(timer)
      reject(new Error(`${role} exited before it was ready (code ${code}, signal ${signal})\n${stderr}`))
    })
  })
}

/** SIGTERM, then SIGKILL after `graceMs`; resolves when the process is gone. */
export async function stopArcade(proc: ArcadeProcess, graceMs = 10_000): Promise<void> {
  if (proc.child.exitCode !== null || proc.child.signalCode !== null) return
  proc.child.kill('SIGTERM')
  const timer = setTimeout(() => proc.child.kill('SIGKILL'), graceMs)
  await proc.exited
  clearTimeout(timer)
}
