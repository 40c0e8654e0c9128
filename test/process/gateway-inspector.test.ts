// The MCP Inspector (@modelcontextprotocol/inspector 2.x, in CLI mode) as a host: a real process
// that lists and calls the mesh's tools through `meshctl gateway`, over stdio (it launches the
// gateway) and over Streamable HTTP, with a named tool set on each. Agents are processes under
// mutual TLS on the defaults.
import { spawn } from 'node:child_process'
import { mkdir, writeFile } from 'node:fs/promises'
import { createRequire } from 'node:module'
import { dirname, join } from 'node:path'
import t from 'tap'
import { spawnExample } from '../helpers/agents.ts'
import { collect } from '../helpers/collect.ts'
import { gatewayMesh, root } from '../helpers/gateway-mesh.ts'
import { waitFor } from '../helpers/wait.ts'

t.setTimeout(240_000)

// The package's `mcp-inspector` command: a launcher whose --cli mode is the Inspector's CLI.
const inspectorBin = join(dirname(createRequire(import.meta.url).resolve('@modelcontextprotocol/inspector/package.json')), 'clients', 'launcher', 'build', 'index.js')
const m = await gatewayMesh(t, 'gateway-inspector')
const { home, boot, mesh: MESH } = m
// The Inspector keeps a catalog and client settings under HOME: a throwaway one, not the user's.
const inspectorHome = join(home, 'inspector-home')
await mkdir(inspectorHome)
const config = join(home, 'gateway.json')
await writeFile(config, JSON.stringify({ toolSets: { stay: { capabilities: ['hotels'] } } }))
m.agents.push(...await Promise.all([spawnExample('weather.ts', ['weather-one', 'basic', 'plain'], m.env), spawnExample('hotels.ts', [], m.env)]))
// The gateway takes the bootstrap's snapshot when it joins: wait until both adverts are in it.
await waitFor('the bootstrap knows both agents', () => [...boot.replica.members()].filter((x) => x.advert.tools.length > 0).length === 2)

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
  const gateway = await m.http(['--config', config], { MCP_MESH_GATEWAY_TOKEN: 's3cret' })
  await waitFor('the gateway prints the URL of the set', () => /tool set stay: .* at http:\S+\n/.test(gateway.stderr()))
  const { url } = gateway
  t.equal(/tool set stay: .* at (http:\S+)/.exec(gateway.stderr())![1], `${url}/stay`)
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
  gateway.proc.kill('SIGTERM')
  t.equal(await gateway.exited, 0)
})
