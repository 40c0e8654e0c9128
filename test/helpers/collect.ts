import type { ChildProcess } from 'node:child_process'

/** Waits for a child process (spawned with piped stdout and stderr) to exit; its code and output. */
export async function collect (child: ChildProcess): Promise<{ code: number | null, out: string, err: string }> {
  let out = ''
  let err = ''
  child.stdout?.on('data', (d: Buffer) => { out += d.toString() })
  child.stderr?.on('data', (d: Buffer) => { err += d.toString() })
  const code = await new Promise<number | null>((resolve) => child.once('exit', resolve))
  return { code, out, err }
}
