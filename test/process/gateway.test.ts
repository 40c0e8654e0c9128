// `meshctl gateway` as a host runs it: a real MCP client spawning the command over stdio (and one
// over Streamable HTTP), in a mesh with mutual TLS, providers as processes and in process.
import { spawn } from 'node:child_process'
import t from 'tap'
import { z } from 'zod'
import { Client } from '@modelcontextprotocol/sdk/client/index.js'
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js'
import { ToolListChangedNotificationSchema } from '@modelcontextprotocol/sdk/types.js'
import type { CallToolResult } from '@modelcontextprotocol/sdk/types.js'
import { createMeshNode } from '../../src/node.ts'
import type { MeshNode } from '../../src/node.ts'
import { spawnExample } from '../helpers/agents.ts'
import { gatewayMesh, root } from '../helpers/gateway-mesh.ts'
import { testNodeOptions } from '../helpers/mesh.ts'
import { collect } from '../helpers/collect.ts'
import { waitFor } from '../helpers/wait.ts'

t.setTimeout(240_000)

const nodes: MeshNode[] = []
t.teardown(async () => { await Promise.all(nodes.map((n) => n.stop())) })
// Mutual TLS on the defaults: agents, bootstrap and gateway take identities from the local CA in `home`.
const m = await gatewayMesh(t, 'gateway')
const { home, boot, env, agents, mesh: MESH } = m

// Two equal weather providers as processes (one is killed for failover), one in process.
agents.push(...await Promise.all([
  spawnExample('weather.ts', ['weather-one', 'basic', 'plain'], env),
  spawnExample('weather.ts', ['weather-two', 'basic', 'plain'], env),
]))
const hotels = createMeshNode(testNodeOptions(MESH, 'hotels', { bootstrap: boot.addrs, home, tls: { mode: 'strict' } }))
hotels.tool('find_hotels', {
  capability: 'hotels',
  description: 'Hotels in a city',
  annotations: { title: 'Find hotels', readOnlyHint: true, idempotentHint: true },
  input: { city: z.string() },
  output: { city: z.string(), hotels: z.array(z.string()) },
}, ({ city }) => ({ city, hotels: [`Grand ${city}`] }))
// Reports progress, then runs until cancelled: what the host's progress and cancellation reach.
let slowAborted = false
hotels.tool('slow', { capability: 'slow', annotations: { readOnlyHint: true } }, async (_args, _deps, ctx) => {
  await ctx.progress({ progress: 1, total: 2, message: 'halfway' })
  await new Promise<void>((resolve) => {
    const cap = setTimeout(resolve, 60_000)
    ctx.signal.addEventListener('abort', () => { slowAborted = true; clearTimeout(cap); resolve() }, { once: true })
  })
  return { done: true }
})
nodes.push(hotels)
await hotels.start()
await hotels.ready()

/** Spawns the gateway over stdio as a host does; counts `tools/list_changed`. */
async function stdioGateway (): Promise<{ client: Client, changes: () => number }> {
  const client = new Client({ name: 'test-host', version: '1.0.0' })
  let changes = 0
  client.setNotificationHandler(ToolListChangedNotificationSchema, () => { changes++ })
  await m.connect(client)
  return { client, changes: () => changes }
}

const names = async (c: Client): Promise<string[]> => (await c.listTools()).tools.map((x) => x.name)
const gw = await stdioGateway()

t.test('lists one tool per capability, with the chosen provider\'s schemas and annotations', async (t) => {
  await waitFor('the gateway lists hotels, slow and weather', async () => (await names(gw.client)).join() === 'hotels,slow,weather')
  const { tools } = await gw.client.listTools()
  const h = tools.find((x) => x.name === 'hotels')!
  t.equal(h.description, 'Hotels in a city')
  t.equal(h.title, 'Find hotels')
  t.match(h.annotations, { readOnlyHint: true, idempotentHint: true })
  t.match(h.inputSchema, { type: 'object', properties: { city: { type: 'string' } } })
  t.match(h.outputSchema, { type: 'object', properties: { hotels: { type: 'array' } } })
  const w = tools.find((x) => x.name === 'weather')!
  t.equal(w.description, 'Forecast for a destination and dates', 'equal providers: no note about different tools')
  t.match(w.annotations, { readOnlyHint: true })
})

t.test('a call returns the provider\'s structured result; an unknown tool is an MCP error', async (t) => {
  const r = await gw.client.callTool({ name: 'hotels', arguments: { city: 'Oslo' } }) as CallToolResult
  t.notOk(r.isError)
  t.same(r.structuredContent, { city: 'Oslo', hotels: ['Grand Oslo'] })
  const w = await gw.client.callTool({ name: 'weather', arguments: { destination: 'Lisbon', dates: 'May 3-7' } }) as CallToolResult
  t.match(w.structuredContent, { destination: 'Lisbon', by: /^weather-(one|two)$/ })
  const bad = await gw.client.callTool({ name: 'hotels', arguments: { city: 7 } }) as CallToolResult
  t.equal(bad.isError, true, 'bad arguments: an isError result')
  t.equal((bad._meta?.['mcp-mesh/error'] as { code?: string } | undefined)?.code, 'MESH_ERR_CALL_INVALID_ARGS', 'with the mesh code')
  await t.rejects(gw.client.callTool({ name: 'no_such_tool', arguments: {} }), { code: -32602 })
})

t.test('a host\'s progress token and cancellation reach the provider', async (t) => {
  const cancel = new AbortController()
  const progress: Array<{ progress: number, total?: number, message?: string }> = []
  const call = gw.client.callTool({ name: 'slow', arguments: {} }, undefined, {
    signal: cancel.signal,
    onprogress: (p) => { progress.push(p); cancel.abort() },
  })
  await t.rejects(call, 'the host gave up')
  t.match(progress, [{ progress: 1, total: 2, message: 'halfway' }], 'progress travelled to the host')
  await waitFor('the provider sees the cancellation', () => slowAborted)
  t.pass('cancelled at the provider')
})

t.test('tools/list_changed when a provider joins and when the last one leaves', async (t) => {
  const before = gw.changes()
  const translate = createMeshNode(testNodeOptions(MESH, 'translator', { bootstrap: boot.addrs, home, tls: { mode: 'strict' } }))
  translate.tool('translate', { capability: 'translate', input: { text: z.string() } }, ({ text }) => ({ text: text.toUpperCase() }))
  await translate.start()
  await waitFor('list_changed after the join', () => gw.changes() > before)
  t.ok((await names(gw.client)).includes('translate'), 'the new capability is listed')
  t.same((await gw.client.callTool({ name: 'translate', arguments: { text: 'hej' } }) as CallToolResult).structuredContent, { text: 'HEJ' })
  const joined = gw.changes()
  await translate.stop()
  await waitFor('list_changed after the leave', () => gw.changes() > joined)
  t.notOk((await names(gw.client)).includes('translate'), 'the capability is gone')
})

t.test('a call whose provider died fails over to the other provider', async (t) => {
  const [one] = agents
  one.proc.kill('SIGKILL')
  await one.exited
  // Round robin would send every other call to the dead one: each still succeeds, from weather-two.
  for (let i = 0; i < 4; i++) {
    const r = await gw.client.callTool({ name: 'weather', arguments: { destination: 'Oslo', dates: 'June' } }) as CallToolResult
    t.notOk(r.isError, `call ${i + 1} succeeded`)
    t.match(r.structuredContent, { by: 'weather-two' })
  }
})

t.test('Streamable HTTP: lists and calls; a non-loopback bind without a token refuses to start', async (t) => {
  const { proc, url, exited } = await m.http()
  const client = new Client({ name: 'test-http-host', version: '1.0.0' })
  await client.connect(new StreamableHTTPClientTransport(new URL(url)))
  t.ok((await names(client)).includes('hotels'))
  t.same((await client.callTool({ name: 'hotels', arguments: { city: 'Rome' } }) as CallToolResult).structuredContent, { city: 'Rome', hotels: ['Grand Rome'] })
  await client.close()
  const unauth = await fetch(url, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{}' })
  t.not(unauth.status, 401, 'no token configured on loopback: the transport answers the request itself')
  proc.kill('SIGTERM')
  t.equal(await exited, 0, 'SIGTERM stops it cleanly')

  const refused = await collect(spawn(process.execPath, ['bin/meshctl.js', 'gateway', '--http', '0.0.0.0:0', '--bootstrap', boot.addrs[0], '--mesh', MESH], {
    cwd: root, env: { ...process.env, MCP_MESH_HOME: home, NO_COLOR: '1', MCP_MESH_GATEWAY_TOKEN: '' }, stdio: ['ignore', 'pipe', 'pipe'],
  }))
  t.equal(refused.code, 2, 'usage error')
  t.match(refused.err, /bearer token/)
})

t.test('with a token, requests without the right bearer get 401', async (t) => {
  // The later --http wins over the helper's loopback one.
  const gateway = await m.http(['--http', '0.0.0.0:0'], { MCP_MESH_GATEWAY_TOKEN: 's3cret' })
  const { proc, exited } = gateway
  const url = new URL(gateway.url)
  url.hostname = '127.0.0.1'
  t.equal((await fetch(url, { method: 'POST', body: '{}' })).status, 401, 'no token')
  t.equal((await fetch(url, { method: 'POST', headers: { authorization: 'Bearer wrong' }, body: '{}' })).status, 401, 'a wrong token')
  const client = new Client({ name: 'test-http-host', version: '1.0.0' })
  await client.connect(new StreamableHTTPClientTransport(url, { requestInit: { headers: { authorization: 'Bearer s3cret' } } }))
  t.ok((await names(client)).includes('hotels'), 'the right token lists')
  await client.close()
  proc.kill('SIGINT')
  t.equal(await exited, 0, 'SIGINT stops it cleanly')
})

t.test('the stdio gateway exits (0) when the host closes its stdin', async (t) => {
  const proc = spawn(process.execPath, ['bin/meshctl.js', 'gateway', '--bootstrap', boot.addrs[0], '--mesh', MESH], {
    cwd: root, env: { ...process.env, MCP_MESH_HOME: home, NO_COLOR: '1' }, stdio: ['pipe', 'pipe', 'pipe'],
  })
  const exited = new Promise<number | null>((resolve) => proc.once('exit', (code) => { resolve(code) }))
  t.teardown(async () => { if (proc.exitCode === null) proc.kill('SIGKILL'); await exited })
  let err = ''
  let out = ''
  proc.stderr.on('data', (d: Buffer) => { err += d.toString() })
  proc.stdout.on('data', (d: Buffer) => { out += d.toString() })
  await waitFor('the gateway serves', () => /serving \d+ tools over stdio/.test(err), 30_000)
  proc.stdin.end()
  t.equal(await exited, 0)
  t.equal(out, '', 'nothing but MCP on stdout')
})
