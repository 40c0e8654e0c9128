// Header propagation: the list's rules, and headers carried across three hops over real libp2p
// and real HTTP with 32 calls at once: each chain keeps its own values (nothing leaks between
// concurrent calls), headers off the list never travel, W3C trace context always does.
import t from 'tap'
import { z } from 'zod'
import { createMeshNode } from '../../src/node.ts'
import type { MeshNode } from '../../src/node.ts'
import { HeaderPatternSchema, headerFilter, pickHeaders, pickInbound } from '../../src/proxy/headers.ts'
import { parseMeshNodeOptions } from '../../src/config.ts'
import { testNodeOptions } from '../helpers/mesh.ts'
import { waitFor } from '../helpers/wait.ts'

const MESH = `headers-${process.pid}`
t.setTimeout(60_000)

const nodes: MeshNode[] = []
t.teardown(async () => { await Promise.all(nodes.map(async (n) => n.stop())) })
const propagate = { propagateHeaders: ['x-tenant-*', 'authorization'] }
const start = async (name: string, define: (n: MeshNode) => void, bootstrap: string[] = []): Promise<MeshNode> => {
  const n = createMeshNode(testNodeOptions(MESH, name, { bootstrap, ...propagate }))
  define(n)
  nodes.push(n)
  await n.start()
  await n.ready()
  return n
}
const c = await start('c', (n) => n.tool('c', { input: { i: z.number() } }, async ({ i }, _d, ctx) => ({
  i, tenant: ctx.headers['x-tenant-id'], auth: ctx.headers.authorization, secret: ctx.headers['x-secret'] ?? null, trace: ctx.headers.traceparent,
})))
const b = await start('b', (n) => n.tool('b', { input: { i: z.number() }, dependencies: { c: 'c' } }, async ({ i }, { c }) => await c({ i })), c.gossip.addrs)
const a = await start('a', (n) => n.tool('a', { input: { i: z.number() }, dependencies: { b: 'b' } }, async ({ i }, { b }) => {
  await new Promise((resolve) => setTimeout(resolve, Math.random() * 20)) // interleave the chains
  return await b({ i })
}), c.gossip.addrs)
const caller = await start('caller', () => {}, c.gossip.addrs)
await waitFor('the chain to be resolvable', () => caller.explain('a').ranked.length > 0 && a.explain('b').ranked.length > 0 && b.explain('c').ranked.length > 0)

t.test('32 chains at once, three hops each: each keeps its own headers', async (t) => {
  const chain = caller.dependency<{ i: number, tenant?: string, auth?: string, secret: string | null, trace?: string }>('a')
  const results = await Promise.all(Array.from({ length: 32 }, async (_, i) => chain({ i }, {
    headers: { 'X-Tenant-Id': `tenant-${i}`, authorization: `Bearer token-${i}`, 'x-secret': `s-${i}`, traceparent: `00-${String(i + 1).padStart(32, '0')}-00f067aa0ba902b7-01` },
  })))
  for (const [i, r] of results.entries()) {
    t.same({ tenant: r.tenant, auth: r.auth, secret: r.secret }, { tenant: `tenant-${i}`, auth: `Bearer token-${i}`, secret: null }, `chain ${i}: its own tenant and token at the third hop, and no x-secret`)
    // The trace ID travels; the parent span ID is each hop's own attempt span (W3C trace context).
    t.match(r.trace, new RegExp(`^00-${String(i + 1).padStart(32, '0')}-(?!00f067aa0ba902b7)[0-9a-f]{16}-01$`), `chain ${i}: its own trace at the third hop`)
  }
})

t.test('the list: names and prefixes, case-insensitive; a bare * refused; the request\'s own headers never', async (t) => {
  const f = headerFilter(['X-Tenant-*', 'Authorization'].map((p) => HeaderPatternSchema.parse(p)))
  t.ok(f('x-tenant-id') && f('authorization') && f('traceparent') && f('tracestate'))
  t.notOk(f('x-tenantid') || f('cookie'), 'not listed')
  t.notOk(headerFilter([HeaderPatternSchema.parse('content-*')])('content-length'), 'content-length never travels')
  t.notOk(headerFilter(['mcp-*'])('mcp-mesh-timeout-ms'), 'nor the budget, which each hop sets')
  for (const bad of ['*', 'x-*-id', 'bad header', '']) t.notOk(HeaderPatternSchema.safeParse(bad).success, `refused: "${bad}"`)
  t.throws(() => parseMeshNodeOptions({ name: 'x', propagateHeaders: ['*'] }), { code: 'MESH_ERR_CONFIG_INVALID', message: /bare \*/ })
  t.same(parseMeshNodeOptions({ name: 'x' }, { MCP_MESH_PROPAGATE_HEADERS: 'X-Tenant-*, authorization' }).propagateHeaders, ['x-tenant-*', 'authorization'], 'MCP_MESH_PROPAGATE_HEADERS, as MCP Mesh reads it')
  t.same(pickHeaders({ 'X-Tenant-Id': ['a', 'b'], Cookie: 'c' }, f), { 'x-tenant-id': 'a, b' })
})

t.test('inbound headers (lowercase, as node:http gives them) are picked as pickHeaders would, by lookup when the list names them all', async (t) => {
  const exact = headerFilter(['authorization', 'x-tenant', 'constructor', 'content-length'].map((p) => HeaderPatternSchema.parse(p)))
  t.same(exact.names, ['traceparent', 'tracestate', 'authorization', 'x-tenant', 'constructor'], 'the names a lookup tries: never content-length')
  const inbound = { host: 'a', 'content-length': '3', authorization: 'Bearer x', 'x-tenant': ['a', 'b'], traceparent: 'tp', cookie: 'c' }
  t.same(pickInbound(inbound, exact), { authorization: 'Bearer x', 'x-tenant': 'a, b', traceparent: 'tp' }, 'an inherited name (constructor) is not a header')
  t.same(pickInbound(inbound, exact), pickHeaders(inbound, exact))
  t.equal(pickInbound({ host: 'a' }, exact), undefined, 'none: undefined, as pickHeaders')
  const prefixed = headerFilter(['x-tenant-*'].map((p) => HeaderPatternSchema.parse(p)))
  t.equal(prefixed.names, undefined, 'a prefix needs the scan')
  t.same(pickInbound({ 'x-tenant-id': '7', tracestate: 's', other: 'o' }, prefixed), { 'x-tenant-id': '7', tracestate: 's' })
})
