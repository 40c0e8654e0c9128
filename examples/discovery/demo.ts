// The README's first command: a local bootstrap and the example agents as separate processes,
// then `meshctl list` and `meshctl explain` against them, then a clean shutdown.
import { spawn } from 'node:child_process'
import type { ChildProcess } from 'node:child_process'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { exampleAgents } from './agents.ts'

const root = fileURLToPath(new URL('../..', import.meta.url))
const home = await mkdtemp(join(tmpdir(), 'mesh-demo-'))
// Discovery only (no calls): the agents are gossip nodes without identities, so TLS is off throughout.
const env = { ...process.env, MCP_MESH_HOME: home, MCP_MESH_COLOCATED: 'true', MCP_MESH_TLS_MODE: 'off' }
const children: ChildProcess[] = []

const run = (file: string, args: string[], extraEnv: Record<string, string> = {}): ChildProcess => {
  const child = spawn(process.execPath, [join(root, file), ...args], { env: { ...env, ...extraEnv }, stdio: ['ignore', 'pipe', 'inherit'] })
  children.push(child)
  return child
}
const firstLine = async (child: ChildProcess, match: RegExp): Promise<string> => new Promise((resolve, reject) => {
  let buf = ''
  child.stdout!.on('data', (d: Buffer) => {
    buf += d.toString()
    const m = buf.match(match)
    if (m !== null) resolve(m[0])
  })
  child.once('exit', (code) => { reject(new Error(`${child.spawnargs.slice(1).join(' ')} exited with ${code}`)) })
})
const capture = async (args: string[], bootstrap: string): Promise<string> => {
  const child = run('bin/meshctl.js', [...args, '--bootstrap', bootstrap])
  let out = ''
  child.stdout!.on('data', (d: Buffer) => { out += d.toString() })
  await new Promise((resolve) => child.once('exit', resolve))
  return out
}

try {
  console.log('> starting a local bootstrap')
  const boot = run('bin/mesh-bootstrap.js', ['--listen', '/ip4/127.0.0.1/tcp/0'])
  const addr = await firstLine(boot, /\/ip4\/\S+\/p2p\/\S+/)
  console.log(`  ${addr}`)
  console.log(`> starting ${Object.keys(exampleAgents).length} example agents as separate processes`)
  await Promise.all(Object.keys(exampleAgents).map(async (name) => {
    const line = await firstLine(run('examples/discovery/agent.ts', [name], { MCP_MESH_BOOTSTRAP: addr }), /joined as \S+/)
    console.log(`  ${name} ${line}`)
  }))
  // Every agent has synced with the bootstrap; give the last adverts a moment to spread by gossip.
  await new Promise((resolve) => setTimeout(resolve, 300))
  console.log('\n> meshctl list')
  process.stdout.write(await capture(['list'], addr))
  console.log('\n> meshctl explain weather --tags +claude')
  process.stdout.write(await capture(['explain', 'weather', '--tags', '+claude'], addr))
} finally {
  for (const c of children) if (c.exitCode === null) c.kill('SIGTERM')
  await Promise.all(children.map(async (c) => c.exitCode === null && c.signalCode === null ? new Promise((resolve) => c.once('exit', resolve)) : undefined))
  await rm(home, { recursive: true, force: true })
  console.log('\n> stopped every process')
}
