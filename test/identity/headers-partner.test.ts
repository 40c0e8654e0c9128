// Propagated headers and partners, over real libp2p and real mutual TLS with two trust domains:
// a call to a partner's agent carries only the headers allowed for that partner's domain, so
// `authorization` never leaks to another organisation unless it is named for it.
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t from 'tap'
import { createMeshNode } from '../../src/node.ts'
import type { MeshNode } from '../../src/node.ts'
import type { MeshNodeOptionsInput } from '../../src/config.ts'
import { LocalCa } from '../../src/identity/local-ca.ts'
import { registerEntity } from '../../src/identity/entities.ts'
import { testNodeOptions } from '../helpers/mesh.ts'
import { waitFor } from '../helpers/wait.ts'

const MESH = `hdr-partner-${process.pid}`
t.setTimeout(120_000)
const temp = await mkdtemp(join(tmpdir(), 'mesh-hdr-'))
t.teardown(async () => { await rm(temp, { recursive: true, force: true }) })
const homeA = join(temp, 'a')
const homeB = join(temp, 'b')
const caA = await LocalCa.open(homeA, 'a.test', { create: true })
const caB = await LocalCa.open(homeB, 'b.test', { create: true })
await registerEntity(homeA, 'a.test', { name: 'org-b', caPem: caB.pem, trustDomain: 'b.test' })
await registerEntity(homeB, 'b.test', { name: 'org-a', caPem: caA.pem, trustDomain: 'a.test' })

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
