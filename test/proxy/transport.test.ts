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
import { fakeProvider } from '../helpers/fake-provider.ts'
import type { FakeProvider } from '../helpers/fake-provider.ts'

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

/** A fake provider that holds every tools/call stream open (the caller gives up first), recording what it gets. */
async function holdingProvider (t: { teardown: (fn: () => Promise<void>) => void }): Promise<FakeProvider> {
  const fake = await fakeProvider({
    misbehave: (msg, res) => {
      if (msg.method !== 'tools/call') return false
      res.writeHead(200, { 'content-type': 'text/event-stream' })
      return true
    },
  })
  t.teardown(() => fake.close())
  return fake
}
/** The cancellations a fake provider received, by the request each names. */
const cancelled = (fake: FakeProvider): Array<{ requestId?: unknown, reason?: unknown }> =>
  fake.received.filter((m) => m.method === 'notifications/cancelled').map((m) => m.params as { requestId?: unknown, reason?: unknown })

t.test('a caller that gives up on a call sends MCP notifications/cancelled for it', async (t) => {
  const fake = await holdingProvider(t)
  const client = new McpHttpClient({ clientName: 'canceller', clientVersion: '1.0.0' })
  t.teardown(async () => { await client.close() })
  await t.rejects(client.callTool(fake.url, 'slow', {}, { timeoutMs: 300 }), { code: 'MESH_ERR_CALL_TIMEOUT' })
  const call = fake.received.find((m) => m.method === 'tools/call')
  t.ok(call !== undefined, 'the call reached the server')
  await waitFor('the cancellation to arrive', () => cancelled(fake).length > 0)
  const cancel = cancelled(fake)[0]
  t.equal(cancel.requestId, call!.id, 'it names the request')
  t.equal(cancel.reason, 'the caller timed out')
})

t.test('a cancellation does not wait for a connection of the calls\' pool', async (t) => {
  // Two connections, both busy with calls the provider holds, and a third call queued for one. The
  // aborted call's connection closes, and the queued call takes its place: a cancellation on the
  // calls' pool would wait behind it until a call ends (here: never), and be dropped after 2 s.
  // A provider behind a proxy sees no closed connection: the cancellation is all it gets.
  const fake = await holdingProvider(t)
  const client = new McpHttpClient({ clientName: 'canceller', connections: 2 })
  const rest = new AbortController()
  t.teardown(async () => { rest.abort(); await client.close() })
  const aborted = new AbortController()
  const first = client.callTool(fake.url, 'slow', {}, { signal: aborted.signal }).catch((e: unknown) => e)
  const held = [1, 2].map(async () => await client.callTool(fake.url, 'slow', {}, { signal: rest.signal }).catch(() => {}))
  await waitFor('two calls in flight', () => fake.received.filter((m) => m.method === 'tools/call').length === 2)
  const id = fake.received.find((m) => m.method === 'tools/call')!.id
  aborted.abort()
  t.match(await first, { code: 'MESH_ERR_ABORTED' })
  await waitFor('the queued call takes the freed connection', () => fake.received.filter((m) => m.method === 'tools/call').length === 3)
  // Before, it never came: dropped after its own 2 s, still queued.
  await waitFor('the cancellation arrives while every call holds its connection', () => cancelled(fake).some((c) => c.requestId === id))
  t.same(cancelled(fake), [{ requestId: id, reason: 'the caller aborted the call' }], 'the provider got it, and nothing else ended')
  rest.abort()
  await Promise.all(held)
})
