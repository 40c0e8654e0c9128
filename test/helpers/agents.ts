// Example agents (examples/trip-planner) as real OS processes, for multi-process tests.
import { spawn } from 'node:child_process'
import type { ChildProcess } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import { reapOnExit } from './reap.ts'

const root = fileURLToPath(new URL('../..', import.meta.url))

/** One example agent process. */
export interface ExampleAgent {
  proc: ChildProcess
  /** Its MCP endpoint, read from its "serving ... at <url>" line. */
  url: string
  /** Resolves with the exit code or signal once the process has exited. */
  exited: Promise<{ code: number | null, signal: NodeJS.Signals | null, at: number }>
  /** Resolves once the process has printed something matching `re` (its output so far included). */
  printed(re: RegExp): Promise<void>
}

/** Starts `examples/trip-planner/<file>` (or `file`, a path from the repository's root) with `args` and the mesh environment; waits until it serves. */
export async function spawnExample (file: string, args: string[], env: Record<string, string>): Promise<ExampleAgent> {
  const proc = spawn(process.execPath, [file.includes('/') ? file : `examples/trip-planner/${file}`, ...args], {
    cwd: root,
    env: { ...process.env, MCP_MESH_COLOCATED: 'true', ...env },
    stdio: ['ignore', 'pipe', 'inherit'],
  })
  reapOnExit(proc)
  const exited = new Promise<{ code: number | null, signal: NodeJS.Signals | null, at: number }>((resolve) => {
    proc.once('exit', (code, signal) => resolve({ code, signal, at: Date.now() }))
  })
  let out = ''
  const watchers = new Set<() => void>()
  proc.stdout!.on('data', (d: Buffer) => {
    out += d.toString()
    for (const w of watchers) w()
  })
  const printed = async (re: RegExp): Promise<void> => new Promise((resolve, reject) => {
    const check = (): void => {
      if (!re.test(out)) return
      watchers.delete(check)
      resolve()
    }
    watchers.add(check)
    check()
    void exited.then(({ code, signal }) => reject(new Error(`${file} ${args.join(' ')} exited (${signal ?? code}) before printing ${re}`)))
  })
  await printed(/serving .*at http\S+/)
  const url = out.match(/serving .*at (http\S+)/)![1]
  return { proc, url, exited, printed }
}
