// A revocation spreads to the whole mesh, across homes (hosts): signed by the CA of the revoked
// identity's trust domain, carried by sync, checked by every member against that domain's bundle.
// The agents here live in separate homes and hold no CA key (the file provider, as on other
// hosts); only the bank's home holds the CA. Real libp2p, real mutual TLS, real certificates.
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises'
import { createPrivateKey, sign } from 'node:crypto'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t from 'tap'
import { createMeshNode } from '../../src/node.ts'
import type { MeshNode } from '../../src/node.ts'
import type { MeshNodeOptionsInput } from '../../src/config.ts'
import { LocalCa } from '../../src/identity/local-ca.ts'
import { issueSvid } from '../../src/identity/svid.ts'
import { listRevocations, revocationPayload, revoke } from '../../src/identity/revocations.ts'
import type { Revocation } from '../../src/identity/revocations.ts'
import type { Notices } from '../../src/gossip/notices.ts'
import { testNodeOptions } from '../helpers/mesh.ts'
import { waitFor } from '../helpers/wait.ts'

const MESH = `revoke-mesh-${process.pid}`
t.setTimeout(120_000)
const temp = await mkdtemp(join(tmpdir(), 'mesh-revoke-mesh-'))
t.teardown(async () => { await rm(temp, { recursive: true, force: true }) })
const homeOf = (name: string): string => join(temp, name)
const ca = await LocalCa.open(homeOf('bank'), 'mcp-mesh.local', { create: true })
const outsider = await LocalCa.open(join(temp, 'outsider'), 'mcp-mesh.local', { create: true })

/** An agent of another host: its own home, its identity in files issued by the CA elsewhere. */
async function fileTls (name: string): Promise<MeshNodeOptionsInput['tls']> {
  const dir = join(homeOf(name), 'svid')
  await mkdir(dir, { recursive: true })
  const svid = await issueSvid(ca, { name, hosts: ['127.0.0.1'] })
  await writeFile(join(dir, 'svid.pem'), svid.certPem)
  await writeFile(join(dir, 'svid.key'), svid.keyPem, { mode: 0o600 })
  await writeFile(join(dir, 'bundle.pem'), svid.bundlePem)
  return { mode: 'strict', provider: 'file', certFile: join(dir, 'svid.pem'), keyFile: join(dir, 'svid.key'), bundleFile: join(dir, 'bundle.pem') }
}

const nodes: MeshNode[] = []
t.teardown(async () => { await Promise.all(nodes.map(async (n) => n.stop())) })
async function start (name: string, extra: Partial<MeshNodeOptionsInput>, define: (n: MeshNode) => void = () => {}, seam: Parameters<typeof createMeshNode>[1] = {}): Promise<MeshNode> {
  const n = createMeshNode(testNodeOptions(MESH, name, { home: homeOf(name), tls: await fileTls(name), ...extra }), seam)
  define(n)
  nodes.push(n)
  await n.start()
  await n.ready()
  return n
}

/** A revocation signed with `keyPem`, as it travels. */
function signed (spiffeId: string, keyPem: string): string {
  const r: Revocation = { spiffeId, revokedAt: new Date().toISOString() }
  r.sig = sign('sha256', revocationPayload(r), createPrivateKey(keyPem)).toString('base64')
  return JSON.stringify(r)
}

const bank = await start('bank', { tls: { mode: 'strict' } }, (n) => n.tool('pay', { capability: 'pay' }, async () => ({ paid: true })))
const join_ = { bootstrap: bank.gossip.addrs }
const shop = await start('shop', join_, (n) => n.tool('sell', { capability: 'sell' }, async () => ({ sold: true })))
const mallory = await start('mallory', join_, (n) => n.tool('fence', { capability: 'fence' }, async () => ({ fenced: true })))
// A member with a valid identity that offers forged revocations in every sync: the shop's,
// signed by a CA outside the bundle, and the bank's, signed with its own SVID key.
const rogueTls = await fileTls('rogue')
const { readFile } = await import('node:fs/promises')
const rogueKey = await readFile((rogueTls as { keyFile: string }).keyFile, 'utf8')
const outsiderKey = await readFile(join(temp, 'outsider', 'ca', 'mcp-mesh.local', 'ca.key'), 'utf8')
const forged = [signed('spiffe://mcp-mesh.local/agent/shop', outsiderKey), signed('spiffe://mcp-mesh.local/agent/bank', rogueKey)]
const rogueNotices: Notices = { digest: () => 'forged', list: () => forged, offer: () => ({ accepted: 0, dropped: 0 }), onNew: () => () => {} }
await start('rogue', { ...join_, tls: rogueTls }, () => {}, { gossip: { notices: rogueNotices } })
t.ok(outsider.pem !== ca.pem, 'the outsider CA is another CA of the same trust domain name')

t.test('forged revocations from a member are dropped and counted, and revoke no one', async (t) => {
  await waitFor('the bank and the shop to drop forged notices', () => bank.gossip.stats.notices.dropped > 0 && shop.gossip.stats.notices.dropped > 0, 30_000)
  t.equal(bank.gossip.stats.notices.accepted + shop.gossip.stats.notices.accepted, 0, 'none accepted')
  await waitFor('the shop to see pay', () => shop.explain('pay').ranked.length > 0)
  t.same(await shop.call('pay'), { paid: true }, 'the shop still calls the bank')
  await waitFor('the bank to see sell', () => bank.explain('sell').ranked.length > 0)
  t.same(await bank.call('sell'), { sold: true }, 'the bank still calls the shop')
  t.same(await listRevocations(homeOf('shop')), [], 'nothing was written to the shop\'s home')
})

t.test('a revocation signed by the CA reaches agents of other homes, without a restart', async (t) => {
  await waitFor('the shop to see fence', () => shop.explain('fence').ranked.length > 0)
  t.same(await shop.call('fence'), { fenced: true }, 'before: the shop calls mallory')
  const r = await revoke(homeOf('bank'), { spiffeId: 'spiffe://mcp-mesh.local/agent/mallory' })
  t.type(r.sig, 'string', 'signed by the home\'s local CA')
  const t0 = Date.now()
  await waitFor('the shop to learn it and cut mallory off', () => shop.gossip.stats.notices.accepted > 0 && !shop.gossip.neighbours().includes(mallory.peerId), 20_000)
  t.comment(`the shop (another home) took it up in ${Date.now() - t0} ms`)
  await t.rejects(shop.call('fence'), { code: 'MESH_ERR_CALL_NO_PROVIDER' }, 'mallory\'s tool no longer resolves at the shop')
  await t.rejects(mallory.call('sell'), 'mallory\'s call to the shop is refused')
  await waitFor('the shop to keep it in its home', async () => (await listRevocations(homeOf('shop'))).some((x) => x.spiffeId === r.spiffeId && x.sig === r.sig))
  t.same(await shop.call('pay'), { paid: true }, 'the others go on')
})

t.test('a member that joins later gets the revocations with its first sync', async (t) => {
  const late = await start('late', { bootstrap: shop.gossip.addrs })
  await waitFor('the late member to take the revocation', () => late.gossip.stats.notices.accepted > 0)
  t.same(late.explain('fence').ranked, [], 'it never resolves mallory\'s tool')
  await waitFor('the late member to keep it in its home', async () => (await listRevocations(homeOf('late'))).some((x) => x.spiffeId === 'spiffe://mcp-mesh.local/agent/mallory'))
  await waitFor('the late member to see pay', () => late.explain('pay').ranked.length > 0)
  t.same(await late.call('pay'), { paid: true }, 'it calls the bank')
})
