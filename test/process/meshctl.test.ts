// meshctl start / call / status as a user runs them: real processes, real sockets, exit codes.
import t from 'tap'
import { spawn } from 'node:child_process'
import type { ChildProcess } from 'node:child_process'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { reapOnExit } from '../helpers/reap.ts'
import { collect } from '../helpers/collect.ts'

// Starting several agent processes takes most of a minute on 2 cores that other work shares: the
// bound on the whole file is wide, since it limits waiting and measures nothing.
t.setTimeout(300_000)

const root = fileURLToPath(new URL('../..', import.meta.url))
const home = await mkdtemp(join(tmpdir(), 'mesh-meshctl-'))
const MESH = `meshctl-${process.pid}`
const env = { ...process.env, MCP_MESH_HOME: home, MCP_MESH_NAMESPACE: MESH, NO_COLOR: '1' }

const meshctl = (args: string[]): ChildProcess => {
  const child = spawn(process.execPath, ['bin/meshctl.js', ...args], { cwd: root, env, stdio: ['ignore', 'pipe', 'pipe'] })
  reapOnExit(child, 'SIGTERM')
  return child
}
const run = async (args: string[]): Promise<{ code: number | null, out: string, err: string }> => collect(meshctl(args))

const start = meshctl(['start', 'examples/trip-planner/hotels.ts', 'examples/trip-planner/flights.ts'])
let log = ''
const startExit = new Promise<number | null>((resolve) => start.once('exit', resolve))
t.teardown(async () => {
  if (start.exitCode === null) start.kill('SIGKILL')
  await rm(home, { recursive: true, force: true })
})
// Up when both agents have printed their "serving" line (or fail when meshctl start exits first).
await new Promise<void>((resolve, reject) => {
  start.stdout!.on('data', (d: Buffer) => {
    log += d.toString()
    if (/hotels serving/.test(log) && /flights serving/.test(log)) resolve()
  })
  void startExit.then((code) => { reject(new Error(`meshctl start exited (${code}) before the agents were up:\n${log}`)) })
})
const bootstrap = log.match(/bootstrap (\/ip4\/\S+)/)![1]
const join_ = ['--bootstrap', bootstrap]

t.test('call prints the result and who served it; --json is machine-readable', async (t) => {
  const text = await run(['call', 'hotels', '{"destination":"Oslo","dates":"May 3-7"}', ...join_])
  t.equal(text.code, 0, text.err)
  t.match(text.out, /Grand Oslo/)
  t.match(text.out, /served by hotels \(find_hotels at https:\/\/127\.0\.0\.1:\d+\/mcp\) in [\d.]+ ms/)
  const json = await run(['call', 'flights', '{"destination":"Oslo","dates":"May 3-7"}', '--json', ...join_])
  t.equal(json.code, 0, json.err)
  const parsed = JSON.parse(json.out) as { result: { by: string }, provider: { agent: string }, ms: number }
  t.equal(parsed.result.by, 'flights')
  t.equal(parsed.provider.agent, 'flights')
  t.type(parsed.ms, 'number')
})

t.test('call exit codes: no provider 4, bad JSON 2, bad arguments 1, unreachable mesh 3', async (t) => {
  const none = await run(['call', 'translate', ...join_])
  t.equal(none.code, 4)
  t.match(none.err, /MESH_ERR_CALL_NO_PROVIDER.*flights, hotels/)
  const usage = await run(['call', 'hotels', '{nope', ...join_])
  t.equal(usage.code, 2)
  t.match(usage.err, /not JSON/)
  const bad = await run(['call', 'hotels', '{"destination":1}', ...join_])
  t.equal(bad.code, 1)
  t.match(bad.err, /MESH_ERR_CALL_INVALID_ARGS/)
  const unreachable = await run(['call', 'hotels', '--timeout', '500', '--bootstrap', '/ip4/127.0.0.1/tcp/9/p2p/12D3KooWLmbNTmpTYWh5ZtY2x8fjJ8yhLGRKmMsZVsvoyYV1pqH4'])
  t.equal(unreachable.code, 3)
})

t.test('status shows the agent, its readiness and tools; an unknown agent exits 4', async (t) => {
  const s = await run(['status', 'hotels', '--json', ...join_])
  t.equal(s.code, 0, s.err)
  const [row] = JSON.parse(s.out) as Array<{ name: string, ready: string, liveness: string, tools: Array<{ capability: string }> }>
  t.match(row, { name: 'hotels', ready: 'ready', liveness: 'alive', tools: [{ capability: 'hotels' }] })
  const missing = await run(['status', 'nobody', ...join_])
  t.equal(missing.code, 4)
  const help = await run(['status', '--help'])
  t.equal(help.code, 0)
  t.match(help.out, /Usage: meshctl status/)
})

t.test('Ctrl-C to meshctl start drains every agent and exits 0', async (t) => {
  start.kill('SIGINT')
  t.equal(await startExit, 0)
  t.match(log, /hotels\s+\| stopped/)
  t.match(log, /flights\s+\| stopped/)
})
