// Named tool sets of `meshctl gateway --http --config <file>`: each set at /mcp/<name> shows its
// own tools and hears `tools/list_changed` for its own changes only. The gateway is a process,
// the providers real nodes under mutual TLS, the hosts SDK clients over Streamable HTTP.
import { spawn } from 'node:child_process'
import { writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import t from 'tap'
import { Client } from '@modelcontextprotocol/sdk/client/index.js'
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js'
import { ToolListChangedNotificationSchema } from '@modelcontextprotocol/sdk/types.js'
import type { MeshNode } from '../../src/node.ts'
import { collect } from '../helpers/collect.ts'
import { gatewayMesh, root } from '../helpers/gateway-mesh.ts'
import { testMesh } from '../helpers/mesh.ts'
import { waitFor } from '../helpers/wait.ts'

t.setTimeout(180_000)

const m = await gatewayMesh(t, 'gateway-sets')
const { home, boot, mesh: MESH } = m
const config = join(home, 'gateway.json')
await writeFile(config, JSON.stringify({ toolSets: { travel: { capabilities: ['weather', 'hotels'] }, ops: { capabilities: ['status', 'deploy'] } } }))
const providers = testMesh(t, MESH)
/** A provider node offering `capabilities` (one tool each, named by the capability). */
const provider = async (name: string, capabilities: string[]): Promise<MeshNode> => await providers.start(name, (n) => {
  for (const c of capabilities) n.tool(c, { capability: c }, () => ({ by: name }))
}, boot.addrs, { home, tls: { mode: 'strict' } })
const base = await provider('base', ['weather', 'status'])
// The gateway takes the bootstrap's snapshot when it joins: wait until base's advert is in it.
await waitFor('the bootstrap knows base', () => [...boot.replica.members()].some((x) => x.advert.name === 'base'))
const gateway = await m.http(['--config', config])
await waitFor('the gateway prints the URL of each set', () => /tool set travel: .*\n/.test(gateway.stderr()) && /tool set ops: .*\n/.test(gateway.stderr()))
const { url } = gateway

/** A host on `path`, counting its `tools/list_changed`. */
async function host (path: string): Promise<{ names: () => Promise<string[]>, changes: () => number }> {
  const client = new Client({ name: `host-${path}`, version: '1.0.0' })
  let changes = 0
  client.setNotificationHandler(ToolListChangedNotificationSchema, () => { changes++ })
  await client.connect(new StreamableHTTPClientTransport(new URL(path, `${url}/`)))
  m.clients.push(client)
  return { names: async () => (await client.listTools()).tools.map((x) => x.name), changes: () => changes }
}
const [all, travel, ops] = await Promise.all([host(url), host(`${url}/travel`), host(`${url}/ops`)])

t.test('each set shows its own tools; /mcp shows all', async (t) => {
  t.same(await travel.names(), ['weather'])
  t.same(await ops.names(), ['status'])
  t.same(await all.names(), ['status', 'weather'])
  const unknown = await fetch(`${url}/nope`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{}' })
  t.equal(unknown.status, 404, 'a path of no set')
})

t.test('each set hears tools/list_changed for its own tools only', async (t) => {
  const before = { all: all.changes(), travel: travel.changes(), ops: ops.changes() }
  await provider('hotels', ['hotels'])
  await waitFor('travel hears of hotels', () => travel.changes() === before.travel + 1)
  t.same(await travel.names(), ['hotels', 'weather'])
  await provider('deploy', ['deploy'])
  await waitFor('ops hears of deploy', () => ops.changes() === before.ops + 1)
  t.same(await ops.names(), ['deploy', 'status'])
  // base offers a tool of each set: both hear its leave. A host's notifications come in order on
  // its stream, so one for the other set's change would have come before this one.
  await base.stop()
  await waitFor('every host hears of the leave', () => travel.changes() === before.travel + 2 && ops.changes() === before.ops + 2 && all.changes() === before.all + 3)
  t.same({ all: all.changes() - before.all, travel: travel.changes() - before.travel, ops: ops.changes() - before.ops }, { all: 3, travel: 2, ops: 2 }, 'no set heard of the other\'s change')
  t.same(await travel.names(), ['hotels'])
  t.same(await ops.names(), ['deploy'])
})

t.test('a session opened on one set is not served on another path', async (t) => {
  const res = await fetch(`${url}/travel`, { method: 'POST', headers: { 'content-type': 'application/json', accept: 'application/json, text/event-stream' }, body: JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'initialize', params: { protocolVersion: '2025-06-18', capabilities: {}, clientInfo: { name: 'probe', version: '1' } } }) })
  const session = res.headers.get('mcp-session-id')
  await res.body?.cancel()
  t.ok(session, 'initialized on /mcp/travel')
  const other = await fetch(`${url}/ops`, { method: 'POST', headers: { 'content-type': 'application/json', accept: 'application/json, text/event-stream', 'mcp-session-id': session!, 'mcp-protocol-version': '2025-06-18' }, body: JSON.stringify({ jsonrpc: '2.0', id: 2, method: 'tools/list' }) })
  await other.body?.cancel()
  t.equal(other.status, 404, 'no such session on /mcp/ops')
})

t.test('a bad config file is a usage error naming the file and the field', async (t) => {
  const bad = join(home, 'bad.json')
  await writeFile(bad, JSON.stringify({ toolSets: { travel: { capability: ['weather'] } } }))
  const r = await collect(spawn(process.execPath, ['bin/meshctl.js', 'gateway', '--config', bad, '--bootstrap', boot.addrs[0], '--mesh', MESH], {
    cwd: root, env: { ...process.env, MCP_MESH_HOME: home, NO_COLOR: '1' }, stdio: ['ignore', 'pipe', 'pipe'],
  }))
  t.equal(r.code, 2)
  t.match(r.err, /MESH_ERR_GATEWAY_CONFIG: invalid gateway config .*bad\.json/)
  t.match(r.err, /toolSets\.travel/)
})
