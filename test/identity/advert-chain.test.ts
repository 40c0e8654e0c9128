// Adverts carry their SVID chain, and every member checks it, for adverts relayed by others too:
// the chain must lead to a CA of the SPIFFE ID's own trust domain, name the ID and hold the key the
// advert endorses. Unit checks of each refusal, then a relayed advert over real libp2p and mutual
// TLS: a partner trusted by one member of our domain but not by another reaches only the first.
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t from 'tap'
import { createMeshNode } from '../../src/node.ts'
import type { MeshNode } from '../../src/node.ts'
import type { MeshNodeOptionsInput } from '../../src/config.ts'
import { LocalCa } from '../../src/identity/local-ca.ts'
import { issueSvid } from '../../src/identity/svid.ts'
import { registerEntity } from '../../src/identity/entities.ts'
import { advertIdentity, advertIdentityCheck } from '../../src/identity/advert-check.ts'
import { AdvertSchema } from '../../src/topology/advert.ts'
import type { Advert } from '../../src/topology/advert.ts'
import { testNodeOptions } from '../helpers/mesh.ts'
import { waitFor } from '../helpers/wait.ts'

const MESH = `chain-${process.pid}`
t.setTimeout(120_000)
const temp = await mkdtemp(join(tmpdir(), 'mesh-chain-'))
t.teardown(async () => { await rm(temp, { recursive: true, force: true }) })
const caA = await LocalCa.open(join(temp, 'bank'), 'a.test', { create: true })
const caB = await LocalCa.open(join(temp, 'partner'), 'b.test', { create: true })
const impostorCa = await LocalCa.open(join(temp, 'impostor'), 'a.test', { create: true })

t.test('each refusal of an advert\'s identity says why', async (t) => {
  const svid = await issueSvid(caA, { name: 'weather', hosts: [] })
  const other = await issueSvid(caA, { name: 'other', hosts: [] })
  const forged = await issueSvid(impostorCa, { name: 'weather', hosts: [] })
  const revoked = new Set<string>()
  const check = advertIdentityCheck({ bundleOf: (td) => td === 'a.test' ? caA.pem : undefined, isRevoked: (id) => revoked.has(id) })
  const identity = advertIdentity({ ...svid, keyPath: '', facts: undefined as never })
  const advert = (id: Partial<NonNullable<Advert['identity']>> | undefined): Advert => ({ identity: id === undefined ? undefined : { ...identity, ...id } } as Advert)
  t.equal(check(advert({})), undefined, 'a true advert passes')
  t.match(check(advert(undefined)), /names no identity/)
  t.match(check(advert({ chain: undefined })), /carries no certificate chain/)
  t.match(check(advert({ id: 'spiffe://a.test/agent/other' })), /claims spiffe:\/\/a.test\/agent\/other but its certificate names spiffe:\/\/a.test\/agent\/weather/)
  t.match(check(advert({ key: advertIdentity({ ...other, keyPath: '', facts: undefined as never }).key })), /the key it endorses is not its certificate's/)
  t.match(check(advert({ chain: advertIdentity({ ...forged, keyPath: '', facts: undefined as never }).chain })), /does not lead to a CA of the trust domain a.test/)
  t.match(check(advert({ chain: ['bm90IGEgY2VydA=='] })), /not an X.509-SVID/)
  const partner = await issueSvid(caB, { name: 'x', hosts: [] })
  t.match(check(advert(advertIdentity({ ...partner, keyPath: '', facts: undefined as never }))), /trust domain b.test, which this member does not trust/)
  const late = advertIdentityCheck({ bundleOf: () => caA.pem, isRevoked: () => false, now: () => svid.notAfter.getTime() + 1 })
  t.match(late(advert({})), /not valid now/)
  revoked.add(svid.spiffeId)
  t.match(check(advert({})), /is revoked/)
})

t.test('the advert schema takes only SPIFFE IDs', async (t) => {
  const base = { v: 1, mesh: 'm', name: 'a', peerId: 'p', incarnation: 1, seq: 1, issuedAt: 1, addrs: [], tools: [] }
  for (const id of ['spiffe://A.test/agent/x', 'spiffe://a.test/agent/../x', 'spiffe://a.test:8080/x', 'spiffe://a.test/x?y']) {
    t.notOk(AdvertSchema.safeParse({ ...base, identity: { id, key: 'k'.repeat(43), exp: 1 } }).success, `refused: ${id}`)
  }
  t.ok(AdvertSchema.safeParse({ ...base, identity: { id: 'spiffe://a.test/agent/x', key: 'k'.repeat(43), exp: 1 } }).success, 'taken: spiffe://a.test/agent/x')
})

t.test('a relayed advert from a domain this member does not trust is dropped and counted', async (t) => {
  const nodes: MeshNode[] = []
  t.teardown(async () => { await Promise.all(nodes.map(async (n) => n.stop())) })
  const start = async (name: string, extra: Partial<MeshNodeOptionsInput>): Promise<MeshNode> => {
    const n = createMeshNode(testNodeOptions(MESH, name, { timing: { joinRetryMs: 200 }, ...extra }))
    n.tool(`${name}_tool`, { capability: name }, async () => ({ from: name }))
    nodes.push(n)
    await n.start()
    await n.ready()
    return n
  }
  // The hub: a.test, from certificate files issued by the bank's CA, in a home that registers b.test.
  const hubDir = join(temp, 'hub', 'svid')
  await mkdir(hubDir, { recursive: true })
  const hubSvid = await issueSvid(caA, { name: 'hub', hosts: ['127.0.0.1'] })
  await writeFile(join(hubDir, 'svid.pem'), hubSvid.certPem)
  await writeFile(join(hubDir, 'svid.key'), hubSvid.keyPem, { mode: 0o600 })
  await writeFile(join(hubDir, 'bundle.pem'), hubSvid.bundlePem)
  await registerEntity(join(temp, 'hub'), 'a.test', { name: 'org-b', caPem: caB.pem, trustDomain: 'b.test' })
  await registerEntity(join(temp, 'partner'), 'b.test', { name: 'org-a', caPem: caA.pem, trustDomain: 'a.test' })
  const bank = await start('bank', { home: join(temp, 'bank'), tls: { mode: 'strict', trustDomain: 'a.test' } })
  const hub = await start('hub', { home: join(temp, 'hub'), bootstrap: bank.gossip.addrs, tls: { mode: 'strict', trustDomain: 'a.test', provider: 'file', certFile: join(hubDir, 'svid.pem'), keyFile: join(hubDir, 'svid.key'), bundleFile: join(hubDir, 'bundle.pem') } })
  const partner = await start('partner', { home: join(temp, 'partner'), bootstrap: hub.gossip.addrs, tls: { mode: 'strict', trustDomain: 'b.test' } })
  await waitFor('the hub to hold the partner\'s advert', () => hub.members().some((m) => m.advert.peerId === partner.peerId))
  await waitFor('the bank to drop the partner\'s advert as untrusted', () => (bank.gossip.stats.dropped.untrusted ?? 0) > 0)
  // Several syncs later, the bank still holds no member of b.test.
  await waitFor('two more syncs at the bank', (() => { const s = bank.gossip.stats.syncs + 2; return () => bank.gossip.stats.syncs >= s })())
  t.notOk(bank.members().some((m) => m.advert.peerId === partner.peerId), 'the bank\'s replica never takes it')
  t.ok(bank.members().some((m) => m.advert.peerId === hub.peerId), 'the hub is a member of the bank\'s replica')
  t.equal(bank.gossip.stats.dropped.untrusted !== undefined, true, `dropped as untrusted: ${bank.gossip.stats.dropped.untrusted}`)
  t.equal(hub.gossip.stats.dropped.untrusted ?? 0, 0, 'the hub, which trusts b.test, dropped nothing')
})
