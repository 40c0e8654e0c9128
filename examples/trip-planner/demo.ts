// The README's first command. `meshctl start` runs a local bootstrap and four agents as separate
// processes; a fifth (weather-claude) runs on its own so the demo can stop it. Then meshctl calls
// plan_trip twice: first weather-claude serves the weather hop (preferred by its tag), then,
// after it drains away, weather-basic does, with no restart. Everything stops cleanly at the end.
import { spawn } from 'node:child_process'
import type { ChildProcess } from 'node:child_process'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'

const root = fileURLToPath(new URL('../..', import.meta.url))
const here = (f: string): string => join('examples/trip-planner', f)
const home = await mkdtemp(join(tmpdir(), 'mesh-demo-'))
const env = { ...process.env, MCP_MESH_HOME: home, MCP_MESH_COLOCATED: 'true', NO_COLOR: '1' }
const children: ChildProcess[] = []
const trip = JSON.stringify({ destination: 'Lisbon', dates: '2026-12-01 to 2026-12-05' })

const run = (args: string[], extraEnv: Record<string, string> = {}, echo = false): ChildProcess => {
  const child = spawn(process.execPath, args, { cwd: root, env: { ...env, ...extraEnv }, stdio: ['ignore', 'pipe', 'inherit'] })
  if (echo) {
    let partial = ''
    child.stdout!.on('data', (d: Buffer) => {
      const lines = (partial + d.toString()).split('\n')
      partial = lines.pop() ?? ''
      for (const line of lines) console.log(`    ${line}`)
    })
  }
  children.push(child)
  return child
}
const waitForLine = async (child: ChildProcess, match: RegExp, timeoutMs = 20_000): Promise<string> => new Promise((resolve, reject) => {
  let buf = ''
  const timer = setTimeout(() => reject(new Error(`no line matching ${match} within ${timeoutMs} ms`)), timeoutMs)
  child.stdout!.on('data', (d: Buffer) => {
    buf += d.toString()
    const m = buf.match(match)
    if (m !== null) { clearTimeout(timer); resolve(m[1] ?? m[0]) }
  })
  child.once('exit', (code) => { clearTimeout(timer); reject(new Error(`${child.spawnargs.slice(1).join(' ')} exited with ${code}`)) })
})
const meshctl = async (args: string[]): Promise<number> => {
  console.log(`\n> meshctl ${args.map((a) => a.includes(' ') || a.startsWith('{') ? `'${a}'` : a).join(' ')}`)
  const child = run(['bin/meshctl.js', ...args], {}, true)
  return await new Promise((resolve) => child.once('exit', (code) => resolve(code ?? 1)))
}
const exited = (c: ChildProcess): Promise<unknown> => c.exitCode !== null || c.signalCode !== null ? Promise.resolve() : new Promise((resolve) => c.once('exit', resolve))

let failed = false
try {
  console.log('> meshctl start weather-basic hotels flights trip-planner   (a local bootstrap first)')
  const mesh = run(['bin/meshctl.js', 'start', `${here('weather.ts')} weather-basic basic plain`, here('hotels.ts'), here('flights.ts'), here('planner.ts')], {}, true)
  const bootstrap = await waitForLine(mesh, /bootstrap (\/ip4\/\S+)/)
  await Promise.all([/weather-basic serving/, /hotels serving/, /flights serving/, /trip-planner serving/].map((m) => waitForLine(mesh, m)))

  console.log('\n> starting weather-claude on its own (tags claude,premium; plan_trip prefers +claude)')
  const claude = run([here('weather.ts'), 'weather-claude', 'claude,premium', 'rich'], { MCP_MESH_BOOTSTRAP: bootstrap }, true)
  await waitForLine(claude, /weather-claude serving/)
  await new Promise((resolve) => setTimeout(resolve, 300)) // let its advert spread by gossip

  const join = ['--bootstrap', bootstrap]
  failed ||= await meshctl(['call', 'plan_trip', trip, ...join]) !== 0
  failed ||= await meshctl(['explain', 'weather', '--tags', '+claude', ...join]) !== 0

  console.log('\n> stopping weather-claude (SIGTERM: it drains, then leaves the mesh)')
  claude.kill('SIGTERM')
  await exited(claude)
  failed ||= await meshctl(['call', 'plan_trip', trip, ...join]) !== 0
  failed ||= await meshctl(['status', 'trip-planner', ...join]) !== 0

  console.log('\n> Ctrl-C to meshctl start: every agent drains and leaves')
  mesh.kill('SIGINT')
  await exited(mesh)
  if (mesh.exitCode !== 0) failed = true
} catch (err) {
  failed = true
  console.error(`demo failed: ${(err as Error).message}`)
} finally {
  for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGTERM')
  await Promise.all(children.map(exited))
  await rm(home, { recursive: true, force: true })
  console.log(failed ? '\n> demo FAILED' : '\n> done: every process stopped')
  process.exitCode = failed ? 1 : 0
}
