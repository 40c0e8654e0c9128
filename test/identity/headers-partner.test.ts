// Propagated headers and partners, over real libp2p and real mutual TLS with two trust domains:
// a call to a partner's agent carries only the headers allowed for that partner's domain, so
// `authorization` never leaks to another organisation unless it is named for it.
import t from 'tap'
import { createMeshNode } from '../../src/node.ts'
import type { MeshNode } from '../../src/node.ts'
import type { MeshNodeOptionsInput } from '../../src/config.ts'
import { testNodeOptions } from '../helpers/mesh.ts'
import { waitFor } from '../helpers/wait.ts'
import { twoDomains } from '../helpers/two-domains.ts'

const MESH = `hdr-partner-${process.pid}`
t.setTimeout(120_000)
const { homeA, homeB } = await twoDomains(t, 'mesh-hdr-')

const nodes: MeshNode[] = []
t.teardown(async () => { await Promise.all(nodes.map(async (n) => n.stop())) })
const start = async (name: string, extra: Partial<MeshNodeOptionsInput>, define: (n: MeshNode) => void): Promise<MeshNode> => {
  const n = createMeshNode(testNodeOptions(MESH, name, { timing: { joinRetryMs: 200 }, ...extra }))
  define(n)
  nodes.push(n)
  await n.start()
  await n.ready()
  return n
}
const seen = (ctx: { headers: Record<string, unknown> }): Record<string, unknown> => ({ auth: ctx.headers.authorization ?? null, tenant: ctx.headers['x-tenant-id'] ?? null })
const org = (home: string, td: string): Partial<MeshNodeOptionsInput> => ({ home, tls: { mode: 'strict', trustDomain: td }, propagateHeaders: ['authorization', 'x-tenant-*'], partnerHeaders: { 'b.test': ['x-tenant-*'] } })

const inner = await start('inner', org(homeA, 'a.test'), (n) => n.tool('inner', { capability: 'inner' }, async (_a, _d, ctx) => seen(ctx)))
const partner = await start('partner', { ...org(homeB, 'b.test'), bootstrap: inner.gossip.addrs }, (n) => n.tool('outer', { capability: 'outer', allow: ['spiffe://a.test/agent/*'] }, async (_a, _d, ctx) => seen(ctx)))
const front = await start('front', { ...org(homeA, 'a.test'), bootstrap: inner.gossip.addrs }, (n) => n.tool('front', {
  dependencies: { outer: { capability: 'outer', trustDomains: ['b.test'] }, inner: 'inner' },
}, async (_a, { outer, inner }) => ({ partner: await outer({}), own: await inner({}) })))
await waitFor('front to see both providers', () => front.explain({ capability: 'outer', trustDomains: ['b.test'] }).ranked.length > 0 && front.explain('inner').ranked.length > 0, 30_000)
t.ok(partner.peerId !== '', 'the partner runs in its own trust domain')

t.test('the partner gets the tenant, not the credentials; our own agent gets both', async (t) => {
  // In process (front offers 'front'): the call's headers go through the same list as over HTTP.
  const r = await front.call<{ partner: unknown, own: unknown }>('front', {}, { headers: { authorization: 'Bearer ours', 'x-tenant-id': 'acme' } })
  t.same(r.own, { auth: 'Bearer ours', tenant: 'acme' }, 'an agent of our domain gets what the list names')
  t.same(r.partner, { auth: null, tenant: 'acme' }, 'b.test gets only x-tenant-*, as partnerHeaders says')
})
