// The MCP Inspector (@modelcontextprotocol/inspector 2.x, in CLI mode) as a host: a real process
// that lists and calls the mesh's tools through `meshctl gateway`, over stdio (it launches the
// gateway) and over Streamable HTTP, with a named tool set on each. Agents are processes under
// mutual TLS on the defaults.
import { spawn } from 'node:child_process'
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises'
import { createRequire } from 'node:module'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import t from 'tap'
import { startBootstrap } from '../../src/bootstrap/daemon.ts'
import { spawnExample } from '../helpers/agents.ts'
import type { ExampleAgent } from '../helpers/agents.ts'
import { collect } from '../helpers/collect.ts'
import { reapOnExit } from '../helpers/reap.ts'
import { waitFor } from '../helpers/wait.ts'

t.setTimeout(240_000)

const root = fileURLToPath(new URL('../..', import.meta.url))
// The package's `mcp-inspector` command: a launcher whose --cli mode is the Inspector's CLI.
const inspectorBin = join(dirname(createRequire(import.meta.url).resolve('@modelcontextprotocol/inspector/package.json')), 'clients', 'launcher', 'build', 'index.js')
const MESH = `gateway-inspector-${process.pid}`
const home = await mkdtemp(join(tmpdir(), 'mesh-gateway-inspector-'))
// The Inspector keeps a catalog and client settings under HOME: a throwaway one, not the user's.
const inspectorHome = join(home, 'inspector-home')
await mkdir(inspectorHome)
const config = join(home, 'gateway.json')
await writeFile(config, JSON.stringify({ toolSets: { stay: { capabilities: ['hotels'] } } }))
const boot = await startBootstrap({ mesh: MESH, home, ephemeralKey: true, colocated: true, listen: ['/ip4/127.0.0.1/tcp/0'] })
const env = { MCP_MESH_NAMESPACE: MESH, MCP_MESH_HOME: home, MCP_MESH_BOOTSTRAP: boot.addrs[0] }
const agents: ExampleAgent[] = []
t.teardown(async () => {
  for (const a of agents) if (a.proc.exitCode === null && a.proc.signalCode === null) a.proc.kill('SIGKILL')
  await Promise.all(agents.map((a) => a.exited))
  await boot.stop()
  await rm(home, { recursive: true, force: true })
})
agents.push(...await Promise.all([spawnExample('weather.ts', ['weather-one', 'basic', 'plain'], env), spawnExample('hotels.ts', [], env)]))
// The gateway takes the bootstrap's snapshot when it joins: wait until both adverts are in it.
await waitFor('the bootstrap knows both agents', () => [...boot.replica.members()].filter((m) => m.advert.tools.length > 0).length === 2)

interface Run { code: number | null, result: Record<string, unknown> | undefined, err: string }
/** Runs `mcp-inspector --cli --format json <args>`; the result is the JSON it prints, if any. */
async function inspector (args: string[]): Promise<Run> {
  const { code, out, err } = await collect(spawn(process.execPath, [inspectorBin, '--cli', '--format', 'json', ...args], {
    cwd: root, env: { ...process.env, HOME: inspectorHome, NO_COLOR: '1' }, stdio: ['ignore', 'pipe', 'pipe'],
  }))
  const json = out.trim() === '' ? undefined : JSON.parse(out) as { result?: Record<string, unknown> }
  return { code, result: json?.result, err }
}
/** The stdio target: the Inspector launches the gateway (passing it only the environment given with -e). */
const stdioGateway = (...extra: string[]): string[] => ['-e', `MCP_MESH_HOME=${home}`, '--', process.execPath, 'bin/meshctl.js', 'gateway', '--bootstrap', boot.addrs[0], '--mesh', MESH, ...extra]
const names = (r: Run): string[] => ((r.result?.tools ?? []) as Array<{ name: string }>).map((x) => x.name)

t.test('stdio: the Inspector lists the tools, with portable schemas', async (t) => {
  const r = await inspector(['--strict', '--method', 'tools/list', ...stdioGateway()])
  t.equal(r.code, 0, 'exit 0 (--strict: no schema portability error)', { stderr: r.err })
  t.same(names(r), ['hotels', 'weather'])
  const weather = (r.result!.tools as Array<{ name: string, inputSchema: unknown, annotations: unknown }>).find((x) => x.name === 'weather')
  t.match(weather, { inputSchema: { type: 'object', required: ['destination', 'dates'] }, annotations: { readOnlyHint: true } })
})

t.test('stdio: the Inspector initializes and calls a tool; a tool error is its exit 5 with the mesh code', async (t) => {
  const init = await inspector(['--method', 'initialize', ...stdioGateway()])
  t.equal(init.code, 0, 'exit 0', { stderr: init.err })
  t.match(init.result, { serverInfo: { name: 'mcp-mesh-gateway' }, capabilities: { tools: { listChanged: true }, logging: {} } })
  const call = await inspector(['--method', 'tools/call', '--tool-name', 'weather', '--tool-arg', 'destination=Oslo', 'dates=May', ...stdioGateway()])
  t.equal(call.code, 0, 'exit 0', { stderr: call.err })
  t.match(call.result, { structuredContent: { destination: 'Oslo', by: 'weather-one' } })
  const bad = await inspector(['--method', 'tools/call', '--tool-name', 'weather', '--tool-arg', 'destination=Oslo', ...stdioGateway()])
  t.equal(bad.code, 5, 'the Inspector\'s exit code for an isError result')
  t.match(bad.result, { isError: true, _meta: { 'mcp-mesh/error': { code: 'MESH_ERR_CALL_INVALID_ARGS' } } })
})

t.test('stdio: --tool-set serves only the set\'s tools; an unknown set is a usage error naming the known ones', async (t) => {
  const r = await inspector(['--method', 'tools/list', ...stdioGateway('--config', config, '--tool-set', 'stay')])
  t.equal(r.code, 0, 'exit 0', { stderr: r.err })
  t.same(names(r), ['hotels'])
  const unknown = await collect(spawn(process.execPath, ['bin/meshctl.js', 'gateway', '--bootstrap', boot.addrs[0], '--mesh', MESH, '--config', config, '--tool-set', 'nope'], {
    cwd: root, env: { ...process.env, MCP_MESH_HOME: home, NO_COLOR: '1' }, stdio: ['ignore', 'pipe', 'pipe'],
  }))
  t.equal(unknown.code, 2)
  t.match(unknown.err, /no tool set "nope" in .*gateway\.json: it names stay/)
})

t.test('Streamable HTTP: the Inspector lists and calls at /mcp and at a tool set\'s /mcp/<name>, sending the bearer token', async (t) => {
  const proc = spawn(process.execPath, ['bin/meshctl.js', 'gateway', '--http', '127.0.0.1:0', '--config', config, '--bootstrap', boot.addrs[0], '--mesh', MESH], {
    cwd: root, env: { ...process.env, MCP_MESH_HOME: home, NO_COLOR: '1', MCP_MESH_GATEWAY_TOKEN: 's3cret' }, stdio: ['ignore', 'pipe', 'pipe'],
  })
  reapOnExit(proc)
  const exited = new Promise<number | null>((resolve) => proc.once('exit', (code) => { resolve(code) }))
  t.teardown(async () => { if (proc.exitCode === null) proc.kill('SIGKILL'); await exited })
  let err = ''
  proc.stderr.on('data', (d: Buffer) => { err += d.toString() })
  await waitFor('the gateway prints its URLs', () => /tool set stay: .* at http:\S+/.test(err), 30_000)
  const url = /tools at (http:\S+)/.exec(err)![1]
  t.equal(/tool set stay: .* at (http:\S+)/.exec(err)![1], `${url}/stay`)
  const auth = ['--header', 'Authorization: Bearer s3cret']
  const all = await inspector(['--transport', 'http', '--server-url', url, ...auth, '--method', 'tools/list'])
  t.equal(all.code, 0, 'exit 0', { stderr: all.err })
  t.same(names(all), ['hotels', 'weather'])
  const call = await inspector(['--transport', 'http', '--server-url', url, ...auth, '--method', 'tools/call', '--tool-name', 'hotels', '--tool-arg', 'destination=Rome', 'dates=June'])
  t.equal(call.code, 0, 'exit 0', { stderr: call.err })
  t.match(call.result, { structuredContent: { hotels: [{ name: 'Grand Rome' }], by: 'hotels' } })
  const set = await inspector(['--transport', 'http', '--server-url', `${url}/stay`, ...auth, '--method', 'tools/list'])
  t.equal(set.code, 0, 'exit 0', { stderr: set.err })
  t.same(names(set), ['hotels'], 'the set shows only its tools')
  // --stored-auth-only: no interactive OAuth; the 401 is the Inspector's "auth required" (exit 3).
  const refused = await inspector(['--transport', 'http', '--server-url', url, '--stored-auth-only', '--method', 'tools/list'])
  t.equal(refused.code, 3, 'without the token the Inspector is refused')
  t.match(refused.err, /unauthorized: send Authorization: Bearer/)
  proc.kill('SIGTERM')
  t.equal(await exited, 0)
})
