// Federation over real libp2p and real mutual TLS: two organisations, each with its own local CA
// and trust domain, in one mesh. Before registration a cross-organisation call fails; after
// registering each other's CA (entities) it succeeds for the dependency that opts in; after a
// revoke it fails again, and the connections between the two are closed.
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t from 'tap'
import { z } from 'zod'
import { createMeshNode } from '../../src/node.ts'
import type { MeshNode } from '../../src/node.ts'
import type { MeshNodeOptionsInput } from '../../src/config.ts'
import { startBootstrap } from '../../src/bootstrap/daemon.ts'
import { LocalCa } from '../../src/identity/local-ca.ts'
import { listEntities, registerEntity, revokeEntity } from '../../src/identity/entities.ts'
import { testNodeOptions } from '../helpers/mesh.ts'
import { waitFor } from '../helpers/wait.ts'

const MESH = `fed-${process.pid}`
t.setTimeout(180_000)
const homeA = await mkdtemp(join(tmpdir(), 'mesh-fed-a-'))
const homeB = await mkdtemp(join(tmpdir(), 'mesh-fed-b-'))
t.teardown(async () => {
  await rm(homeA, { recursive: true, force: true })
  await rm(homeB, { recursive: true, force: true })
})
const caA = await LocalCa.open(homeA, 'a.test', { create: true })
const caB = await LocalCa.open(homeB, 'b.test', { create: true })

const nodes: MeshNode[] = []
// Joins are retried quickly, so B joins soon after it is trusted.
const timing = { joinRetryMs: 200 }
const org = (home: string, td: string): Partial<MeshNodeOptionsInput> => ({ home, tls: { mode: 'strict', trustDomain: td }, timing })
const bootA = await startBootstrap({ mesh: MESH, home: homeA, ephemeralKey: true, colocated: true, listen: ['/ip4/127.0.0.1/tcp/0'], tls: { trustDomain: 'a.test' }, timing })
t.teardown(async () => {
  await Promise.all(nodes.map(async (n) => n.stop()))
  await bootA.stop()
})

async function agent (name: string, extra: Partial<MeshNodeOptionsInput>, define: (n: MeshNode) => void = () => {}): Promise<MeshNode> {
  const n = createMeshNode(testNodeOptions(MESH, name, { ...extra, bootstrap: bootA.addrs }))
  define(n)
  nodes.push(n)
  await n.start()
  return n
}

const callers: string[] = []
const planner = await agent('planner', org(homeA, 'a.test'), (n) => {
  n.tool('book', { capability: 'booking', allow: ['spiffe://b.test/agent/weather'] }, async () => ({ booked: true }))
})
await planner.ready()
// Org B joins by adding org A's bootstrap address; its tool allows org A's agents.
const weather = await agent('weather', org(homeB, 'b.test'), (n) => {
  n.tool('get_weather', { capability: 'weather', allow: ['spiffe://a.test/agent/*'], input: { city: z.string() } }, async ({ city }, _deps, ctx) => {
    callers.push(ctx.authInfo?.clientId ?? '')
    return { city, sky: 'clear' }
  })
  n.tool('internal_report', { capability: 'report' }, async () => ({ secret: true }))
})
const optIn = { capability: 'weather', trustDomains: ['b.test'] }

t.test('before registration: org B is not admitted, and a cross-organisation call fails', async (t) => {
  await waitFor('org A to refuse org B', () => bootA.stats.refused.admission + planner.gossip.stats.refused.admission > 0)
  t.notOk(planner.members().some((m) => m.advert.name === 'weather'), 'org A holds no advert of org B')
  await t.rejects(planner.call(optIn, { city: 'Oslo' }), { code: 'MESH_ERR_CALL_NO_PROVIDER' })
})

t.test('register each other (entities): a bundle for our own domain, or a domain twice, is refused', async (t) => {
  await t.rejects(registerEntity(homeA, 'a.test', { name: 'self', caPem: caA.pem }), { code: 'MESH_ERR_ENTITY_INVALID', message: /own trust domain/ })
  await registerEntity(homeA, 'a.test', { name: 'org-b', caPem: caB.pem, trustDomain: 'b.test' })
  await registerEntity(homeB, 'b.test', { name: 'org-a', caPem: caA.pem, trustDomain: 'a.test' })
  await t.rejects(registerEntity(homeA, 'a.test', { name: 'org-b2', caPem: caB.pem, trustDomain: 'b.test' }), { code: 'MESH_ERR_ENTITY_INVALID', message: /registered already, as org-b/ })
  t.same((await listEntities(homeA)).map((e) => [e.name, e.trustDomain]), [['org-b', 'b.test']])
})

t.test('after registration, without a restart: org B joins, and the dependency that opts in calls it', async (t) => {
  await waitFor('org A to hold org B\'s advert', () => planner.members().some((m) => m.advert.name === 'weather' && m.liveness === 'alive'), 30_000)
  t.match(await planner.call(optIn, { city: 'Oslo' }), { city: 'Oslo', sky: 'clear' })
  t.equal(callers.at(-1), 'spiffe://a.test/agent/planner', 'org B\'s tool saw org A\'s SPIFFE ID')
  await t.rejects(planner.call('weather', { city: 'Oslo' }), { code: 'MESH_ERR_CALL_NO_PROVIDER' }, 'a dependency that does not opt in never uses a partner')
  t.match(planner.explain('weather').explanation[0].reasons[0], /does not opt in to b\.test \(trustDomains\)/)
  await t.rejects(planner.call({ capability: 'report', trustDomains: ['b.test'] }), { code: 'MESH_ERR_CALL_NOT_AUTHORIZED', message: /spiffe:\/\/a\.test\/agent\/planner may not call internal_report/ }, 'a partner may call only the tools whose allow-list names it')
  await waitFor('org B to hold org A\'s advert', () => weather.members().some((m) => m.advert.name === 'planner'))
  t.match(await weather.call({ capability: 'booking', trustDomains: ['a.test'] }), { booked: true }, 'and the other way: org B calls org A\'s tool that allows it')
})

t.test('a revoke, without a restart: org B is cut off and the call fails again', async (t) => {
  const refusedBefore = planner.endpointStats.dropped['tls-unauthorized'] ?? 0
  await revokeEntity(homeA, 'org-b')
  await waitFor('org A to close its connections to org B', () => !planner.gossip.neighbours().includes(weather.peerId) && !bootA.neighbours().includes(weather.peerId), 15_000)
  await t.rejects(planner.call(optIn, { city: 'Oslo' }), { code: 'MESH_ERR_CALL_NO_PROVIDER' })
  // Its advert, while org A keeps it (cut off, it is soon declared dead), is refused for its domain.
  const row = planner.explain(optIn).explanation.find((r) => r.agent === 'weather')
  t.ok(row === undefined || row.reasons.some((r) => /b\.test is not a registered entity/.test(r)), `explain says why: ${row?.reasons.join('; ') ?? 'dropped'}`)
  // Org B still trusts org A, but org A closed org B's connections and refuses new ones at the TLS layer.
  const err = await weather.call({ capability: 'booking', trustDomains: ['a.test'] }).then(() => undefined, (e: Error & { code?: string }) => e)
  t.ok(err !== undefined, `org B's call to org A fails (${err?.code}: ${err?.message})`)
  t.ok((planner.endpointStats.dropped['tls-unauthorized'] ?? 0) > refusedBefore, 'org A closed or refused org B\'s connection at the TLS layer, and counted it')
})
