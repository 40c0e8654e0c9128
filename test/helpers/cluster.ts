import { fork, spawn } from 'node:child_process'
import type { ChildProcess } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import { reapOnExit } from './reap.ts'

const fixture = fileURLToPath(new URL('../fixtures/agent-process.ts', import.meta.url))

/** A member as an agent process reports it. */
export interface MemberView { peerId: string, name: string, liveness: string, incarnation: number }
/** A replica change as an agent process reports it. */
export interface ChangeEvent { type: 'change', peerId: string, name: string, after: string, incarnation: number, capabilities: string[], at: number }

/** One agent running as a real OS process, controlled over IPC. */
export interface AgentProcess {
  name: string
  proc: ChildProcess
  peerId: string
  addrs: string[]
  startedAt: number
  spawnedAt: number
  changes: ChangeEvent[]
  members(): Promise<MemberView[]>
  stats(): Promise<Record<string, unknown>>
  deny(peers: string[]): Promise<void>
  allow(peers?: string[]): Promise<void>
  /** Sends a signal (SIGKILL, SIGSTOP, SIGCONT, SIGTERM). */
  signal(sig: NodeJS.Signals): void
  /** Resolves when the process has exited. */
  exited: Promise<void>
}

/**
 * Starts an agent process with these gossip options and waits until it has started. `wrap` runs
 * it through a command first (for example `ip netns exec <host>`), keeping the IPC channel.
 */
export async function spawnAgent (options: Record<string, unknown> & { name: string }, wrap: string[] = []): Promise<AgentProcess> {
  const spawnedAt = Date.now()
  const args = [fixture, JSON.stringify({ ephemeralKey: true, colocated: true, ...options })]
  const proc = wrap.length === 0
    ? fork(fixture, args.slice(1), { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] })
    : spawn(wrap[0], [...wrap.slice(1), process.execPath, ...args], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] })
  reapOnExit(proc)
  const exited = new Promise<void>((resolve) => { proc.once('exit', () => { resolve() }) })
  let seq = 0
  const waiting = new Map<number, { resolve: (v: unknown) => void, reject: (e: Error) => void }>()
  const changes: ChangeEvent[] = []
  const started = new Promise<{ peerId: string, addrs: string[], startedAt: number }>((resolve, reject) => {
    proc.once('exit', (code) => { reject(new Error(`agent ${options.name} exited with ${code} before starting`)) })
    proc.on('message', (raw) => {
      const msg = raw as { type: string, id: number, data?: unknown, error?: string }
      if (msg.type === 'started') resolve(msg as never)
      else if (msg.type === 'change') changes.push(msg as never)
      else if (msg.type === 'reply') {
        const w = waiting.get(msg.id)
        waiting.delete(msg.id)
        if (msg.error !== undefined) w?.reject(new Error(msg.error))
        else w?.resolve(msg.data)
      }
    })
  })
  void exited.then(() => { for (const w of waiting.values()) w.reject(new Error(`agent ${options.name} exited`)) })
  const call = async (cmd: string, extra: Record<string, unknown> = {}): Promise<unknown> => {
    const id = ++seq
    return new Promise((resolve, reject) => {
      waiting.set(id, { resolve, reject })
      proc.send({ cmd, id, ...extra })
    })
  }
  const info = await started
  return {
    name: options.name,
    proc,
    ...info,
    spawnedAt,
    changes,
    members: async () => call('members') as Promise<MemberView[]>,
    stats: async () => call('stats') as Promise<Record<string, unknown>>,
    deny: async (peers) => { await call('deny', { peers }) },
    allow: async (peers) => { await call('allow', { peers }) },
    signal: (sig) => { proc.kill(sig) },
    exited,
  }
}

/** The liveness `viewer` holds for `peerId` (undefined when unknown). */
export async function livenessOf (viewer: AgentProcess, peerId: string): Promise<string | undefined> {
  return (await viewer.members()).find((m) => m.peerId === peerId)?.liveness
}

/** Ends every process (SIGCONT first, in case one is stopped) and waits for them to exit. */
export async function stopAll (agents: AgentProcess[]): Promise<void> {
  await Promise.all(agents.map(async (a) => {
    if (a.proc.exitCode !== null || a.proc.signalCode !== null) return
    a.proc.kill('SIGCONT')
    a.proc.kill('SIGTERM')
    const t = setTimeout(() => a.proc.kill('SIGKILL'), 5_000)
    await a.exited
    clearTimeout(t)
  }))
}
