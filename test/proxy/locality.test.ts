// Locality: among equally ranked providers, a caller goes first to those of its own zone (over
// real libp2p and HTTP: the advert carries the zone), spreading evenly among them, and to the
// others only when none is left; `locality: false` spreads over all. Within a zone, its own trust
// domain's providers come before a partner's (the caller's ordering, with made-up candidates).
import t from 'tap'
import { systemClock } from '../../src/clock.ts'
import { createCaller } from '../../src/proxy/caller.ts'
import type { McpHttpClient } from '../../src/proxy/mcp-client.ts'
import type { MeshTool } from '../../src/proxy/mesh-tool.ts'
import type { Candidate, Resolution } from '../../src/topology/resolver.ts'
import { testMesh } from '../helpers/mesh.ts'
import { waitFor } from '../helpers/wait.ts'

const MESH = `locality-${process.pid}`
t.setTimeout(120_000)
const { nodes, start } = testMesh(t, MESH)
const caller = await start('caller', () => {}, [], { zone: 'eu-west-1a' })
for (const [name, zone] of [['near-1', 'eu-west-1a'], ['near-2', 'eu-west-1a'], ['far', 'us-east-1b']] as const) {
  await start(name, (n) => n.tool('quote', { capability: 'quote' }, async () => ({ by: name })), caller.gossip.addrs, { zone })
}
await waitFor('the caller to see the three providers', () => caller.explain('quote').ranked.length === 3)

/** Who served each of `n` calls. */
async function spread (dep: MeshTool<{ by: string }>, n: number): Promise<Record<string, number>> {
  const count: Record<string, number> = {}
  for (let i = 0; i < n; i++) { const { by } = await dep({}); count[by] = (count[by] ?? 0) + 1 }
  return count
}

t.test('calls go to the providers of the caller\'s zone, evenly; locality: false spreads over all', async (t) => {
  t.same(caller.explain('quote').ranked.map((c) => c.zone).sort(), ['eu-west-1a', 'eu-west-1a', 'us-east-1b'], 'adverts carry their zone')
  const near = await spread(caller.dependency<{ by: string }>('quote'), 300)
  t.same(near, { 'near-1': 150, 'near-2': 150 }, 'every call in the zone, half each')
  const all = await spread(caller.dependency<{ by: string }>({ capability: 'quote', locality: false }), 300)
  t.same(all, { 'near-1': 100, 'near-2': 100, far: 100 }, 'locality off: a third each')
})

t.test('with no provider left in the zone, calls go to the others', async (t) => {
  await Promise.all(nodes.filter((n) => n.options.name.startsWith('near-')).map(async (n) => n.stop()))
  await waitFor('the near providers to leave', () => caller.explain('quote').ranked.length === 1)
  t.same(await spread(caller.dependency<{ by: string }>('quote'), 10), { far: 10 })
})

t.test('nearest first: own zone and trust domain, own domain, a partner in the zone, then the rest', async (t) => {
  const stop = new AbortController()
  t.teardown(() => { stop.abort() })
  const ctx = createCaller({ gossip: () => undefined, client: {} as McpHttpClient, clock: systemClock, settleUntil: () => 0, callTimeoutMs: 1_000, stopSignal: stop.signal, trustDomain: 'acme.com', zone: 'a' })
  const candidate = (agent: string, domain: string, zone: string): Candidate => ({
    peerId: agent, agent, liveness: 'alive', score: 0, version: '1.0.0', addrs: [], zone,
    tool: { name: 'quote', capability: 'quote', version: '1.0.0', tags: [] },
    identity: { spiffeId: `spiffe://${domain}/agent/${agent}`, keyHash: 'k' },
  })
  const ranked = [candidate('partner-far', 'partner.org', 'b'), candidate('partner-near', 'partner.org', 'a'), candidate('own-far', 'acme.com', 'b'), candidate('own-near', 'acme.com', 'a')]
  const resolution = { ranked, tier: 4, selected: ranked[0], spec: [], specIndex: 0, explanation: [] } satisfies Resolution
  for (let i = 0; i < 3; i++) t.same(ctx.order(resolution, 'quote', 'round-robin').map((c) => c.agent), ['own-near', 'own-far', 'partner-near', 'partner-far'], `turn ${i + 1}`)
  const rotated = new Set(Array.from({ length: 4 }, () => ctx.order(resolution, 'quote', 'round-robin', false)[0].agent))
  t.equal(rotated.size, 4, 'locality off: each provider takes its turn first')
})
