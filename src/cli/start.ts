import { spawn } from 'node:child_process'
import type { ChildProcess } from 'node:child_process'
import { basename, resolve } from 'node:path'
import { existsSync } from 'node:fs'
import { startBootstrap } from '../bootstrap/daemon.ts'
import { optionsFromEnv } from '../config.ts'
import type { GossipNode } from '../gossip/gossip-node.ts'
import { Exit, UsageError, commaList, painter, parse } from './args.ts'

export const START_HELP = `Usage: meshctl start <agent file [args...]>... [options]

Runs each agent file as its own process (with this Node) and prefixes its output with its name.
Quote a file with its arguments: meshctl start "weather.ts weather-claude claude rich" hotels.ts
When no bootstrap is given, a local one is started first (on 127.0.0.1) and its address printed,
so meshctl call/list/status can join with --bootstrap <that address>.
Ctrl-C (or SIGTERM) drains every agent: each stops taking calls, finishes those in flight and
leaves the mesh; agents still running after 30 s are killed.
  --bootstrap <multiaddr>  join an existing mesh instead (env MCP_MESH_BOOTSTRAP)
  --mesh <name>            mesh name (env MCP_MESH_NAMESPACE)
  --env KEY=VALUE          extra environment for every agent, repeatable
Exit codes: 0 all agents stopped cleanly, 1 an agent failed, 2 usage.`

/** `meshctl start`: agents as supervised processes, and a local bootstrap when none is given. */
export async function start (argv: string[]): Promise<number> {
  const { values, positionals } = parse(argv, {
    bootstrap: { type: 'string', multiple: true },
    mesh: { type: 'string' },
    env: { type: 'string', multiple: true },
    help: { type: 'boolean', short: 'h' },
  })
  if (values.help === true) { console.log(START_HELP); return Exit.ok }
  if (positionals.length === 0) throw new UsageError('start needs at least one agent file, for example: meshctl start examples/trip-planner/hotels.ts')
  const agents = positionals.map((p) => {
    const [file, ...args] = p.trim().split(/\s+/)
    const path = resolve(file)
    if (!existsSync(path)) throw new UsageError(`no such agent file: ${file}`)
    return { file: path, args, label: [basename(file).replace(/\.[cm]?[jt]s$/, ''), ...args.slice(0, 1)].join(':') }
  })
  const extraEnv: Record<string, string> = {}
  for (const kv of values.env ?? []) {
    const eq = kv.indexOf('=')
    if (eq <= 0) throw new UsageError(`--env takes KEY=VALUE, got "${kv}"`)
    extraEnv[kv.slice(0, eq)] = kv.slice(eq + 1)
  }
  const p = painter()
  let bootstrap = commaList(values.bootstrap)
  if (bootstrap.length === 0) bootstrap = commaList(process.env.MCP_MESH_BOOTSTRAP)
  let local: GossipNode | undefined
  const env: Record<string, string> = { ...process.env as Record<string, string>, ...extraEnv }
  if (values.mesh !== undefined) env.MCP_MESH_NAMESPACE = values.mesh
  if (bootstrap.length === 0) {
    // Everything runs on this host: gossipsub's IP-colocation penalty would silence it past ~10
    // agents, so colocated unless the environment says otherwise (read as config.ts reads it).
    if (optionsFromEnv(env).colocated === undefined) env.MCP_MESH_COLOCATED = 'true'
    // The local bootstrap reads the agents' environment (with --env and --mesh), the way they do.
    local = await startBootstrap({ listen: ['/ip4/127.0.0.1/tcp/0'], ephemeralKey: true }, env)
    bootstrap = [local.addrs[0]]
    console.log(`${p.bold('bootstrap')} ${bootstrap[0]}`)
  }
  env.MCP_MESH_BOOTSTRAP = bootstrap.join(',')

  const colours = [p.green, p.yellow, p.bold, p.dim]
  const width = Math.max(...agents.map((a) => a.label.length))
  let failed = false
  let stopping = false
  const children: ChildProcess[] = agents.map((a, i) => {
    const child = spawn(process.execPath, [a.file, ...a.args], { env, stdio: ['ignore', 'pipe', 'pipe'] })
    const prefix = colours[i % colours.length](a.label.padEnd(width))
    const relay = (stream: NodeJS.WritableStream) => (d: Buffer): void => {
      for (const line of d.toString().split('\n')) if (line !== '') stream.write(`${prefix} | ${line}\n`)
    }
    child.stdout!.on('data', relay(process.stdout))
    child.stderr!.on('data', relay(process.stderr))
    child.once('exit', (code, signal) => {
      const clean = code === 0 || (stopping && (signal === 'SIGTERM' || signal === 'SIGINT'))
      if (!clean) failed = true
      console.log(`${prefix} | ${clean ? 'stopped' : p.red(`exited (${signal ?? `code ${code}`})`)}`)
    })
    return child
  })

  const running = (): ChildProcess[] => children.filter((c) => c.exitCode === null && c.signalCode === null)
  await new Promise<void>((done) => {
    const onSignal = (): void => {
      process.off('SIGINT', onSignal)
      process.off('SIGTERM', onSignal)
      stopping = true
      console.log(p.dim('draining every agent...'))
      for (const c of running()) c.kill('SIGTERM')
      const kill = setTimeout(() => { for (const c of running()) c.kill('SIGKILL') }, 30_000)
      kill.unref()
    }
    process.on('SIGINT', onSignal)
    process.on('SIGTERM', onSignal)
    let left = children.length
    for (const c of children) {
      c.once('exit', () => {
        if (--left === 0) { process.off('SIGINT', onSignal); process.off('SIGTERM', onSignal); done() }
      })
    }
  })
  await local?.stop()
  return failed ? Exit.failure : Exit.ok
}
