// Revoking one agent identity, over real libp2p and real mutual TLS, without a restart: by SPIFFE
// ID (every certificate naming it) and by certificate (its key). The revoked agent is cut off from
// the gossip and barred, its calls are refused at the TLS layer and its open connections closed,
// and its tools no longer resolve.
import { mkdtemp, rm } from 'node:fs/promises'
import { request } from 'node:https'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t from 'tap'
import { z } from 'zod'
import { createMeshNode } from '../../src/node.ts'
import type { MeshNode } from '../../src/node.ts'
import type { MeshNodeOptionsInput } from '../../src/config.ts'
import { LocalCa } from '../../src/identity/local-ca.ts'
import { issueSvid } from '../../src/identity/svid.ts'
import { listRevocations, revoke } from '../../src/identity/revocations.ts'
import { testNodeOptions } from '../helpers/mesh.ts'
import { waitFor } from '../helpers/wait.ts'

const MESH = `revoke-${process.pid}`
t.setTimeout(120_000)
const home = await mkdtemp(join(tmpdir(), 'mesh-revoke-'))
t.teardown(async () => { await rm(home, { recursive: true, force: true }) })
const nodes: MeshNode[] = []
t.teardown(async () => { await Promise.all(nodes.map(async (n) => n.stop())) })
const mtls: Partial<MeshNodeOptionsInput> = { home, tls: { mode: 'strict' } }

async function start (name: string, extra: Partial<MeshNodeOptionsInput>, define: (n: MeshNode) => void = () => {}): Promise<MeshNode> {
  const n = createMeshNode(testNodeOptions(MESH, name, { ...mtls, ...extra }))
  define(n)
  nodes.push(n)
  await n.start()
  await n.ready()
  return n
}

const bank = await start('bank', {}, (n) => n.tool('pay', { capability: 'pay', input: { n: z.number() } }, async ({ n }) => ({ paid: n })))
const join_ = { bootstrap: bank.gossip.addrs }
const shop = await start('shop', join_, (n) => n.tool('sell', { capability: 'sell' }, async () => ({ sold: true })))
const mallory = await start('mallory', join_, (n) => n.tool('fence', { capability: 'fence' }, async () => ({ fenced: true })))

t.test('by SPIFFE ID: the agent is cut off, its calls refused, its tools no longer resolve', async (t) => {
  await waitFor('everyone to see everyone', () => [bank, shop, mallory].every((n) => n.members().length >= 3) && shop.explain('fence').ranked.length > 0 && mallory.explain('pay').ranked.length > 0)
  t.same(await mallory.call('pay', { n: 1 }), { paid: 1 }, 'before: mallory calls the bank (an open connection now)')
  t.same(await shop.call('fence'), { fenced: true }, 'before: the shop calls mallory')
  await revoke(home, { spiffeId: 'spiffe://mcp-mesh.local/agent/mallory' })
  await waitFor('bank and shop to cut mallory off the gossip', () => !bank.gossip.neighbours().includes(mallory.peerId) && !shop.gossip.neighbours().includes(mallory.peerId))
  await t.rejects(mallory.call('pay', { n: 2 }), 'mallory\'s call is refused')
  t.ok((bank.endpointStats.dropped['tls-revoked'] ?? 0) > 0, `the bank refused or closed mallory's connection as revoked (${bank.endpointStats.dropped['tls-revoked']})`)
  await t.rejects(shop.call('fence'), { code: 'MESH_ERR_CALL_NO_PROVIDER' }, 'mallory\'s tool no longer resolves')
  const row = shop.explain('fence').explanation.find((r) => r.agent === 'mallory')
  t.ok(row === undefined || row.reasons.some((r) => r.includes('spiffe://mcp-mesh.local/agent/mallory is revoked')), `explain says why: ${row?.reasons.join('; ') ?? 'dropped'}`)
  t.same(await shop.call('pay', { n: 3 }), { paid: 3 }, 'the others go on')
})

t.test('by certificate: that one certificate is refused, another for the same SPIFFE ID is served', async (t) => {
  const ca = await LocalCa.open(home, 'mcp-mesh.local', { create: false })
  const stolen = await issueSvid(ca, { name: 'ops', hosts: [] })
  const fresh = await issueSvid(ca, { name: 'ops', hosts: [] })
  const post = async (svid: { certPem: string, keyPem: string }): Promise<number | string> => new Promise((resolve) => {
    const u = new URL(bank.url)
    const req = request({ host: u.hostname, port: u.port, path: u.pathname, method: 'POST', cert: svid.certPem, key: svid.keyPem, rejectUnauthorized: false, headers: { 'content-type': 'application/json', accept: 'application/json, text/event-stream' } }, (res) => { resolve(res.statusCode ?? 0); res.resume() })
    req.on('error', (err) => { resolve(err.message) })
    req.end(JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'tools/list' }))
  })
  t.equal(await post(stolen), 200, 'before: served')
  const before = bank.endpointStats.dropped['tls-revoked'] ?? 0
  await revoke(home, { certPem: stolen.certPem })
  const listed = Object.fromEntries((await listRevocations(home)).map((r) => [r.spiffeId, r.keyHash === undefined ? 'every certificate' : 'one certificate']))
  t.same(listed, { 'spiffe://mcp-mesh.local/agent/mallory': 'every certificate', 'spiffe://mcp-mesh.local/agent/ops': 'one certificate' })
  await waitFor('the revoked certificate to be refused', async () => typeof await post(stolen) === 'string')
  t.ok((bank.endpointStats.dropped['tls-revoked'] ?? 0) > before, 'refused as revoked, and counted')
  t.equal(await post(fresh), 200, 'another certificate of the same SPIFFE ID is still served')
})
