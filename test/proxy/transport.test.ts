// The lean client's transport (Node's own keep-alive agents) over real sockets: the TLS seam end to
// end, connection reuse, forget(), and the connect timeout.
import t from 'tap'
import { execFileSync } from 'node:child_process'
import { mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { createServer as createHttpsServer } from 'node:https'
import { createServer as createNetServer } from 'node:net'
import type { AddressInfo, Socket } from 'node:net'
import type { Server } from 'node:http'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { createSecureContext } from 'node:tls'
import { z } from 'zod'
import { McpHttpClient } from '../../src/proxy/mcp-client.ts'
import { isMeshError } from '../../src/errors.ts'
import type { MeshNode } from '../../src/node.ts'
import { createMeshNode } from '../../src/node.ts'
import { testNodeOptions } from '../helpers/mesh.ts'
import { waitFor } from '../helpers/wait.ts'

const MESH = `transport-${process.pid}`

// A throwaway self-signed certificate for 127.0.0.1 (identity will issue real ones).
const dir = mkdtempSync(join(tmpdir(), 'mesh-tls-'))
t.teardown(() => { rmSync(dir, { recursive: true, force: true }) })
execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-days', '1',
  '-subj', '/CN=mesh-test', '-addext', 'subjectAltName=IP:127.0.0.1', '-keyout', join(dir, 'key'), '-out', join(dir, 'cert')], { stdio: 'ignore' })
const key = readFileSync(join(dir, 'key'))
const cert = readFileSync(join(dir, 'cert'))

// A provider whose endpoint is HTTPS, counting the TCP connections it accepts.
let accepted = 0
const sockets = new Set<Socket>()
const provider = createMeshNode(testNodeOptions(MESH, 'tls-provider'), {
  createServer: (listener) => {
    const server = createHttpsServer({ key, cert }, listener)
    server.on('connection', (s: Socket) => { accepted++; sockets.add(s); s.on('close', () => sockets.delete(s)) })
    return server as unknown as Server
  },
})
provider.tool('echo', { capability: 'echo', input: { text: z.string() }, output: { text: z.string() } }, ({ text }) => ({ text }))
const nodes: MeshNode[] = [provider]
t.teardown(async () => { await Promise.all(nodes.map((n) => n.stop())) })
await provider.start()
await provider.ready()

t.test('the TLS seam: an agent given a secure context calls an HTTPS provider through the mesh', async (t) => {
  t.match(provider.url, /^https:\/\//)
  const caller = createMeshNode(testNodeOptions(MESH, 'tls-caller', { bootstrap: provider.gossip.addrs }), {
    connect: { secureContext: createSecureContext({ ca: cert }) },
  })
  nodes.push(caller)
  await caller.start()
  await caller.ready()
  const echo = caller.dependency<{ text: string }>({ capability: 'echo', output: z.object({ text: z.string() }) })
  await waitFor('echo available', () => echo.available, 10_000)
  t.same(await echo({ text: 'over TLS' }), { text: 'over TLS' })
})

t.test('without the CA the certificate is refused, and nothing is served', async (t) => {
  const client = new McpHttpClient({ clientName: 'no-ca' })
  t.teardown(() => client.close())
  const err = await client.callTool(provider.url, 'echo', { text: 'x' }, {}).catch((e: unknown) => e)
  t.ok(isMeshError(err), 'a MeshError')
  t.equal(((err as Error).cause as { code?: string }).code, 'DEPTH_ZERO_SELF_SIGNED_CERT', 'refused for its self-signed certificate')
})

t.test('calls reuse one keep-alive connection (initialize included); forget() closes it', async (t) => {
  const client = new McpHttpClient({ clientName: 'pooled', connect: { secureContext: createSecureContext({ ca: cert }) } })
  t.teardown(() => client.close())
  const before = new Set(sockets)
  const accepted0 = accepted
  for (let i = 0; i < 5; i++) t.same((await client.callTool(provider.url, 'echo', { text: `n${i}` }, {})).structuredContent, { text: `n${i}` })
  t.equal(accepted - accepted0, 1, 'initialize, its notification (202) and five calls shared one connection')
  const mine = [...sockets].filter((s) => !before.has(s))
  client.forget(provider.url)
  await waitFor('the forgotten pool closes its connection', () => mine.every((s) => !sockets.has(s)), 5_000)
  t.same((await client.callTool(provider.url, 'echo', { text: 'again' }, {})).structuredContent, { text: 'again' }, 'a forgotten provider can be called again')
  t.equal(accepted - accepted0, 2, 'a new connection')
})

t.test('a TLS handshake that never completes is unreachable after connectTimeoutMs, not at the call timeout', async (t) => {
  const silent = createNetServer((s) => { s.resume() }) // reads the ClientHello, never answers it
  await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve))
  t.teardown(() => new Promise<void>((resolve) => { silent.close(() => resolve()) }))
  const client = new McpHttpClient({ clientName: 'impatient', connectTimeoutMs: 300 })
  t.teardown(() => client.close())
  const started = Date.now()
  const err = await client.callTool(`https://127.0.0.1:${(silent.address() as AddressInfo).port}/mcp`, 'echo', {}, { timeoutMs: 20_000 }).catch((e: unknown) => e)
  t.match(err, { code: 'MESH_ERR_CALL_UNREACHABLE', details: { notSent: true } })
  t.ok(Date.now() - started < 10_000, 'failed at the connect timeout')
})

t.test('a caller that gives up on a call sends MCP notifications/cancelled for it', async (t) => {
  // A bare MCP server over node:http that records every JSON-RPC message and never answers tools/call.
  const got: Array<{ method?: string, id?: unknown, params?: { requestId?: unknown, reason?: unknown } }> = []
  const { createServer } = await import('node:http')
  const server = createServer((req, res) => {
    let body = ''
    req.on('data', (c: Buffer) => { body += c.toString() })
    req.on('end', () => {
      const m = JSON.parse(body) as { method?: string, id?: unknown }
      got.push(m)
      if (m.method === 'initialize') {
        res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ jsonrpc: '2.0', id: m.id, result: { protocolVersion: '2025-06-18', capabilities: {}, serverInfo: { name: 'rec', version: '1' } } }))
      } else if (m.method === 'tools/call') {
        res.writeHead(200, { 'content-type': 'text/event-stream' }) // held open: the caller gives up first
      } else {
        res.writeHead(202).end()
      }
    })
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  t.teardown(() => { server.closeAllConnections(); server.close() })
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/mcp`
  const client = new McpHttpClient({ clientName: 'canceller', clientVersion: '1.0.0' })
  t.teardown(async () => { await client.close() })
  await t.rejects(client.callTool(url, 'slow', {}, { timeoutMs: 300 }), { code: 'MESH_ERR_CALL_TIMEOUT' })
  const call = got.find((m) => m.method === 'tools/call')
  t.ok(call !== undefined, 'the call reached the server')
  await waitFor('the cancellation to arrive', () => got.some((m) => m.method === 'notifications/cancelled'))
  const cancel = got.find((m) => m.method === 'notifications/cancelled')!
  t.equal(cancel.params?.requestId, call!.id, 'it names the request')
  t.equal(cancel.params?.reason, 'the caller timed out')
})
