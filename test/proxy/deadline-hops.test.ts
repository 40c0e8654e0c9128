// Deadlines across hops, over real libp2p and real HTTP: a caller's timeout travels with the call
// (mcp-mesh-timeout-ms: the budget left), each hop's handler signal aborts when its caller's
// budget runs out, and its own calls inherit what is left, so a chain of three hops never outlives
// its first caller. MCP Mesh's X-Mesh-Timeout (seconds) is accepted inbound too.
import { request } from 'undici'
import t from 'tap'
import { createMeshNode } from '../../src/node.ts'
import type { MeshNode } from '../../src/node.ts'
import { inboundBudget } from '../../src/proxy/call-scope.ts'
import { testNodeOptions } from '../helpers/mesh.ts'
import { waitFor } from '../helpers/wait.ts'

const MESH = `deadline-${process.pid}`
t.setTimeout(60_000)

const nodes: MeshNode[] = []
t.teardown(async () => { await Promise.all(nodes.map(async (n) => n.stop())) })
const start = async (name: string, define: (n: MeshNode) => void, bootstrap: string[] = []): Promise<MeshNode> => {
  const n = createMeshNode(testNodeOptions(MESH, name, { bootstrap, callTimeoutMs: 30_000 }))
  define(n)
  nodes.push(n)
  await n.start()
  await n.ready()
  return n
}

/** What each hop saw: the budget header it got, and when its handler's signal aborted (ms after the first call). */
const seen: Record<string, { budget?: string, abortedAt?: number }> = {}
let t0 = 0
const record = (hop: string, headers: Record<string, unknown>, signal: AbortSignal): void => {
  seen[hop] = { budget: headers['mcp-mesh-timeout-ms'] as string | undefined }
  signal.addEventListener('abort', () => { seen[hop].abortedAt = Date.now() - t0 }, { once: true })
}

const c = await start('c', (n) => n.tool('c', {}, async (_a, _d, ctx) => {
  record('c', ctx.headers, ctx.signal)
  await new Promise((resolve) => { ctx.signal.addEventListener('abort', resolve, { once: true }) })
  return { never: true }
}))
const b = await start('b', (n) => n.tool('b', { dependencies: { c: 'c' } }, async (_a, { c }, ctx) => {
  record('b', ctx.headers, ctx.signal)
  return await c({}) // its own timeout is 30 s: the caller's budget must cut it short
}), c.gossip.addrs)
const a = await start('a', (n) => n.tool('a', { dependencies: { b: 'b' } }, async (_a, { b }, ctx) => {
  record('a', ctx.headers, ctx.signal)
  return await b({})
}), c.gossip.addrs)
const caller = await start('caller', () => {}, c.gossip.addrs)
await waitFor('the chain to be resolvable', () => caller.explain('a').ranked.length > 0 && a.explain('b').ranked.length > 0 && b.explain('c').ranked.length > 0)

t.test('three hops never outlive the first caller\'s deadline', async (t) => {
  t0 = Date.now()
  await t.rejects(caller.call('a', {}, { timeout: 1_500 }), { code: 'MESH_ERR_CALL_TIMEOUT' })
  const took = Date.now() - t0
  t.ok(took < 2_500, `the caller gave up at its deadline (${took} ms)`)
  await waitFor('every hop\'s handler signal to abort', () => ['a', 'b', 'c'].every((h) => seen[h]?.abortedAt !== undefined), 10_000)
  for (const hop of ['a', 'b', 'c']) {
    const budget = Number(seen[hop].budget)
    t.ok(budget > 0 && budget <= 1_500, `${hop} got a budget of ${budget} ms (at most the caller's 1,500)`)
    t.ok(seen[hop].abortedAt! < 3_000, `${hop}'s handler signal aborted at ${seen[hop].abortedAt} ms, not after its own 30 s`)
  }
  t.ok(Number(seen.c.budget) <= Number(seen.b.budget) && Number(seen.b.budget) <= Number(seen.a.budget), `budgets shrink hop by hop: ${seen.a.budget}, ${seen.b.budget}, ${seen.c.budget}`)
})

t.test('MCP Mesh\'s X-Mesh-Timeout (seconds) bounds a call that comes with it', async (t) => {
  delete seen.c
  t0 = Date.now()
  const res = await request(c.url, {
    method: 'POST',
    headers: { 'content-type': 'application/json', accept: 'application/json, text/event-stream', 'x-mesh-timeout': '1' },
    body: JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'tools/call', params: { name: 'c', arguments: {} } }),
    headersTimeout: 10_000,
    bodyTimeout: 10_000,
  })
  await res.body.text()
  await waitFor('c\'s handler signal to abort', () => seen.c?.abortedAt !== undefined, 10_000)
  t.ok(seen.c.abortedAt! >= 900 && seen.c.abortedAt! < 3_000, `c's handler signal aborted at ${seen.c.abortedAt} ms, after its 1 s budget`)
})

t.test('the budget headers: ours in ms, MCP Mesh\'s in seconds, anything else ignored', async (t) => {
  t.equal(inboundBudget({ 'mcp-mesh-timeout-ms': '1500' }), 1500)
  t.equal(inboundBudget({ 'x-mesh-timeout': '2.5' }), 2500)
  t.equal(inboundBudget({ 'mcp-mesh-timeout-ms': '900', 'x-mesh-timeout': '60' }), 900, 'ours wins')
  for (const bad of ['', '0', '-5', 'soon', '1e3', 'Infinity']) t.equal(inboundBudget({ 'mcp-mesh-timeout-ms': bad }), undefined, `ignored: "${bad}"`)
  t.equal(inboundBudget({ 'mcp-mesh-timeout-ms': ['1', '2'] }), undefined, 'two values: ignored')
  t.equal(inboundBudget({ 'mcp-mesh-timeout-ms': String(2 ** 40) }), 2 ** 31 - 1, 'clamped to what a timer takes')
  t.equal(inboundBudget({}), undefined)
})
