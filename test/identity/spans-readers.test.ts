// Who may read an agent's spans, over real libp2p and real mutual TLS with two trust domains: our
// own domain's agents do; a registered partner, admitted to calls, does not, unless the agent
// names it in `tracing.readers`.
import t from 'tap'
import { createMeshNode } from '../../src/node.ts'
import type { MeshNode } from '../../src/node.ts'
import type { MeshNodeOptionsInput } from '../../src/config.ts'
import { testNodeOptions } from '../helpers/mesh.ts'
import { waitFor } from '../helpers/wait.ts'
import { twoDomains } from '../helpers/two-domains.ts'

const MESH = `spans-readers-${process.pid}`
t.setTimeout(120_000)
const { homeA, homeB } = await twoDomains(t, 'mesh-readers-')

const nodes: MeshNode[] = []
t.teardown(async () => { await Promise.all(nodes.map(async (n) => n.stop())) })
const start = async (name: string, extra: Partial<MeshNodeOptionsInput>): Promise<MeshNode> => {
  const n = createMeshNode(testNodeOptions(MESH, name, { timing: { joinRetryMs: 200 }, ...extra }))
  n.tool(`echo-${name}`, {}, async () => ({ by: name }))
  nodes.push(n)
  await n.start()
  await n.ready()
  return n
}
const a = (extra: Partial<MeshNodeOptionsInput> = {}): Partial<MeshNodeOptionsInput> => ({ home: homeA, tls: { mode: 'strict', trustDomain: 'a.test' }, ...extra })
const closed = await start('closed', a())
const open = await start('open', a({ bootstrap: closed.gossip.addrs, tracing: { readers: ['spiffe://b.test/agent/partner'] } }))
const colleague = await start('colleague', a({ bootstrap: closed.gossip.addrs }))
const partner = await start('partner', { home: homeB, tls: { mode: 'strict', trustDomain: 'b.test' }, bootstrap: closed.gossip.addrs })
await waitFor('everyone to see everyone', () => nodes.every((n) => n.members().filter((m) => m.liveness === 'alive').length >= 4), 30_000)

// Each of our two agents keeps the spans of one traced call of its own tool.
const traceId = 'e'.repeat(32)
for (const n of [closed, open]) await n.call(`echo-${n.options.name}`, {}, { headers: { traceparent: `00-${traceId}-${'f'.repeat(16)}-01` } })

t.test('our own domain reads every agent\'s spans', async (t) => {
  const r = await colleague.trace(traceId, { from: ['closed', 'open'] })
  t.same(r.unanswered, [])
  t.same([...new Set(r.spans.map((s) => s.agent))].sort(), ['closed', 'open'])
})

t.test('a partner reads only the agent that names it in tracing.readers', async (t) => {
  const r = await partner.trace(traceId, { from: ['closed', 'open'] })
  t.same(r.unanswered.map((u) => u.agent), ['closed'], 'the closed agent refused')
  t.match(r.unanswered[0].why, /spiffe:\/\/b\.test\/agent\/partner.* may not read the spans of agent closed/)
  t.same([...new Set(r.spans.map((s) => s.agent))], ['open'], 'only the open agent\'s spans')
  t.ok(Number(closed.endpointStats.dropped['not-authorized']) >= 1, 'the refusal is counted')
})
