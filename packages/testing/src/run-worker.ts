import { spawn } from 'node:child_process'

/**
 * Runs a TypeScript worker file in its own Node process (tsx, against package sources) and resolves
 * with its stdout parsed as JSON: how cross-process tests (locks, stampedes) get real processes.
 */
export function runWorker<T>(file: string, env: Record<string, string>): Promise<T> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--import', 'tsx', '--conditions=@rp/source', file], {
      env: { ...process.env, ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    })
    let out = ''
    let err = ''
    child.stdout.on('data', (d) => {
      out += d
    })
    child.stderr.on('data', (d) => {
      err += d
    })
    child.on('exit', (code) => {
      if (code !== 0) reject(new Error(`worker ${file} exited ${code}: ${err}`))
      else {
        try {
          resolve(JSON.parse(out) as T)
        } catch (error) {
          reject(new Error(`worker ${file} printed no JSON: ${(error as Error).message}\n${out}`))
        }
      }
    })
  })
}
