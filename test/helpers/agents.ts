// Example agents (examples/trip-planner) as real OS processes, for multi-process tests.
import { spawn } from 'node:child_process'
import type { ChildProcess } from 'node:child_process'
import { fileURLToPath } from 'node:url'

const root = fileURLToPath(new URL('../..', import.meta.url))

/** One example agent process. */
export interface ExampleAgent {
  proc: ChildProcess
  /** Its MCP endpoint, read from its "serving ... at <url>" line. */
  url: string
  /** Resolves with the exit code or signal once the process has exited. */
  exited: Promise<{ code: number | null, signal: NodeJS.Signals | null, at: number }>
}

/** Starts `examples/trip-planner/<file>` with `args` and the mesh environment; waits until it serves. */
export async function spawnExample (file: string, args: string[], env: Record<string, string>): Promise<ExampleAgent> {
  const proc = spawn(process.execPath, [`examples/trip-planner/${file}`, ...args], {
    cwd: root,
    env: { ...process.env, MCP_MESH_COLOCATED: 'true', ...env },
    stdio: ['ignore', 'pipe', 'inherit'],
  })
  const exited = new Promise<{ code: number | null, signal: NodeJS.Signals | null, at: number }>((resolve) => {
    proc.once('exit', (code, signal) => resolve({ code, signal, at: Date.now() }))
  })
  const url = await new Promise<string>((resolve, reject) => {
    let out = ''
    proc.stdout!.on('data', (d: Buffer) => {
      out += d.toString()
      const m = out.match(/serving .*at (http\S+)/)
      if (m !== null) resolve(m[1])
    })
    void exited.then(({ code, signal }) => reject(new Error(`${file} ${args.join(' ')} exited (${signal ?? code}) before serving`)))
  })
  return { proc, url, exited }
}
