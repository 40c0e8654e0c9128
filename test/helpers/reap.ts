// Child processes of a test die with it: a test file that times out is ended before its teardown
// runs, and agents it started would otherwise live on, holding its output pipe open (the runner
// then waits for them) and loading the machine for the tests that follow.
import type { ChildProcess } from 'node:child_process'

const children = new Map<ChildProcess, NodeJS.Signals>()
process.once('exit', () => {
  for (const [c, signal] of children) if (c.exitCode === null && c.signalCode === null) c.kill(signal)
})

/**
 * Sends `signal` to `child` when this process exits, if it is still running then. SIGKILL for an
 * agent; SIGTERM for a supervisor (`meshctl start`), so it stops its own children too.
 */
export function reapOnExit (child: ChildProcess, signal: NodeJS.Signals = 'SIGKILL'): void {
  children.set(child, signal)
  child.once('exit', () => { children.delete(child) })
}
