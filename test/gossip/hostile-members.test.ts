/**
 * Hostile members over real libp2p (TCP on 127.0.0.1, one process): an attacker that holds a valid
 * key and joins the mesh, then abuses the paths a member may use. Quotas must hold on every path
 * (gossip, sync pushes and pages, probe frames), the replica has a member cap, and the addresses a
 * member advertises cannot turn every node into a port scanner.
 *
 * A bootstrap and two honest agents (A, B) form a mesh with small limits; the attacker is a raw
 * libp2p host (`createHost`) that speaks the mesh's protocols by hand.
 */
import t from 'tap'
import { createServer } from 'node:net'
import type { AddressInfo, Socket } from 'node:net'
import { generateKeyPair } from '@libp2p/crypto/keys'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import { multiaddr } from '@multiformats/multiaddr'
import type { PrivateKey } from '@libp2p/interface'
import { createGossipNode } from '../../src/gossip/gossip-node.ts'
import type { GossipNode } from '../../src/gossip/gossip-node.ts'
import { createHost, advertTopic } from '../../src/gossip/host.ts'
import type { MeshHost } from '../../src/gossip/host.ts'
import { encodeMessage } from '../../src/gossip/codec.ts'
import { probeProtocol, MAX_PROBE_FRAME_BYTES } from '../../src/gossip/probe.ts'
import { syncProtocol } from '../../src/gossip/sync.ts'
import { lpFrames } from '../../src/gossip/libp2p-net.ts'
import type { FrameStream } from '../../src/gossip/net.ts'
import { parseGossipOptions } from '../../src/config.ts'
import type { Advert } from '../../src/topology/advert.ts'
import { waitFor } from '../helpers/wait.ts'

const MESH = `hostile-members-${process.pid}`
const TOPIC = advertTopic(MESH)
const enc = new TextEncoder()
const dec = new TextDecoder()


// ---- the mesh: small limits on A so each one is reached quickly ---------------------------------

const quota = { maxMembers: 16, syncPageSize: 1, dialsPerMemberPerMinute: 20 }
const nodes: GossipNode[] = []
t.teardown(async () => { await Promise.all(nodes.map(async (n) => n.stop())) })
const boot = createGossipNode({ name: 'boot', mesh: MESH, role: 'bootstrap', ephemeralKey: true, colocated: true, quota })
nodes.push(boot)
await boot.start()
const honest = (name: string): GossipNode => createGossipNode({
  name, mesh: MESH, ephemeralKey: true, colocated: true, quota, bootstrap: [boot.addrs[0]],
  advert: { tools: [{ name: `get_${name}`, capability: name, version: '1.0.0' }] },
})
const A = honest('a')
const B = honest('b')
nodes.push(A, B)
await Promise.all([A.start(), B.start()])
await Promise.all([A.ready(), B.ready()])
await waitFor('A and B to see each other', () => A.replica.get(B.peerId)?.liveness === 'alive' && B.replica.get(A.peerId)?.liveness === 'alive')

// ---- the attacker ----------------------------------------------------------------------------------

const attackerKey = await generateKeyPair('Ed25519')
const attacker: MeshHost = await createHost(parseGossipOptions({ name: 'attacker', mesh: MESH, colocated: true }, {}), attackerKey)
const X = attacker.peerId.toString()
t.teardown(async () => { await attacker.stop() })
// It answers every ping, so SWIM keeps it as a member while it misbehaves elsewhere.
await attacker.handle(probeProtocol(MESH), async (stream) => {
  const io = lpFrames(stream, MAX_PROBE_FRAME_BYTES)
  try {
    for (;;) {
      const f = JSON.parse(dec.decode(await io.read())) as { t: string, n: number }
      if (f.t === 'ping') await io.write(enc.encode(JSON.stringify({ t: 'ack', n: f.n })))
    }
  } catch { stream.abort(new Error('done')) }
})
await attacker.start()
await attacker.dial(multiaddr(A.addrs[0]))
attacker.services.pubsub.subscribe(TOPIC)
await waitFor('the attacker to see A subscribed', () => attacker.services.pubsub.getSubscribers(TOPIC).some((p) => p.toString() === A.peerId))

const incarnation = Date.now()
const advertOf = (key: PrivateKey, seq: number, over: Partial<Advert> = {}): Advert => ({
  v: 1, mesh: MESH, name: 'attacker', role: 'agent', peerId: peerIdFromPrivateKey(key).toString(), incarnation, seq, issuedAt: Date.now(),
  status: 'alive', addrs: [], tools: [{ name: 'evil', capability: 'evil', version: '1.0.0', tags: [] }], dependencies: [], ...over,
})

/** Opens a raw stream of a mesh protocol from the attacker to A, as JSON frames. */
async function rawStream (protocol: string, maxBytes = 1 << 20): Promise<{ io: FrameStream, send: (f: unknown) => Promise<void>, recv: () => Promise<Record<string, unknown>> }> {
  const stream = await attacker.dialProtocol(multiaddr(A.addrs[0]), protocol)
  const io = lpFrames(stream, maxBytes)
  return {
    io,
    send: async (f) => { await io.write(enc.encode(JSON.stringify(f))) },
    recv: async () => JSON.parse(dec.decode(await io.read())) as Record<string, unknown>,
  }
}

// ---- cases ---------------------------------------------------------------------------------------

t.test('advertised addresses are dialled a bounded number of times, and skipped once another peer answers there', async (t) => {
  // A "victim": a TCP service that is not this member (it answers with garbage), on 16 loopback
  // addresses the attacker advertises. B and the bootstrap are not connected to the attacker:
  // their upkeep and probes dial it at the addresses it chose.
  const accepted: Socket[] = []
  const victim = createServer((socket) => { accepted.push(socket); socket.on('error', () => {}); socket.end('HTTP/1.1 400 Bad Request\r\n\r\n') })
  await new Promise<void>((resolve) => victim.listen(0, '0.0.0.0', resolve))
  t.teardown(() => { victim.close() })
  const port = (victim.address() as AddressInfo).port
  const addrs = Array.from({ length: 16 }, (_, i) => `/ip4/127.0.0.${i + 1}/tcp/${port}`)
  await attacker.services.pubsub.publish(TOPIC, await encodeMessage('advert', advertOf(attackerKey, 0, { addrs }), MESH, attackerKey))
  await waitFor('B and the bootstrap to learn the addresses', () => B.replica.get(X)?.advert.addrs.length === 16 && boot.replica.get(X)?.advert.addrs.length === 16)
  // Several upkeep ticks (1 s) and probe rounds.
  await new Promise((resolve) => setTimeout(resolve, 6_000))
  const perVictimAddr = new Map<string, number>()
  for (const s of accepted) perVictimAddr.set(s.localAddress ?? '', (perVictimAddr.get(s.localAddress ?? '') ?? 0) + 1)
  t.ok(perVictimAddr.size <= 4, `only the first ${perVictimAddr.size} advertised addresses were tried (quota.maxDialAddrs 4)`)
  // Two honest nodes dial it (B, the bootstrap); each address that answered as another peer is
  // skipped for 10 minutes, so each node connects to each at most once.
  t.ok(accepted.length <= 2 * 4, `${accepted.length} connections reached the victim in 6 s from 2 nodes`)
  t.ok(accepted.length > 0, 'the addresses were tried (the test would prove nothing otherwise)')
})

t.test('an advert whose endpoint is not on a host the member announces is dropped before it spreads (SSRF)', async (t) => {
  const before = A.stats.dropped['bad-endpoint'] ?? 0
  const seq = A.replica.get(X)!.advert.seq + 1
  const addrs = A.replica.get(X)!.advert.addrs
  // It announces 127.0.0.x hosts, and names a cloud metadata address, then another loopback host.
  for (const [i, endpoint] of ['http://169.254.169.254/latest/meta-data/', 'http://127.0.0.99:8080/mcp', 'file:///etc/passwd'].entries()) {
    await attacker.services.pubsub.publish(TOPIC, await encodeMessage('advert', advertOf(attackerKey, seq + i, { addrs, endpoint }), MESH, attackerKey))
  }
  await waitFor('A to drop the three adverts', () => (A.stats.dropped['bad-endpoint'] ?? 0) - before >= 3)
  t.equal((A.stats.dropped['bad-endpoint'] ?? 0) - before, 3)
  t.equal(A.replica.get(X)?.advert.endpoint, undefined, 'A never took an endpoint from it')
  t.equal(B.replica.get(X)?.advert.endpoint, undefined, 'nor B: A did not forward them')
})

t.test('one sync stream is one exchange: a second push, and a page asked twice, end it', async (t) => {
  // A serves pages of one entry (syncPageSize 1), so a full pull takes several pages.
  const s = await rawStream(syncProtocol(MESH))
  await s.send({ t: 'digest', root: '' })
  const first = await s.recv()
  t.equal(first.t, 'buckets')
  await s.send({ t: 'pull', b: Array.from({ length: 64 }, (_, i) => i), have: [] })
  const page = await s.recv()
  t.equal(page.t, 'page')
  t.type(page.next, 'string', 'more pages follow')
  // Replaying the start of the listing (or any `after` but the last page's end) is refused.
  await s.send({ t: 'more', after: '' })
  t.same(await s.recv(), { t: 'error', code: 'out-of-order' })
  s.io.abort(new Error('done'))
  const s2 = await rawStream(syncProtocol(MESH))
  const env = Buffer.from(await encodeMessage('advert', advertOf(attackerKey, 1, { addrs: A.replica.get(X)!.advert.addrs }), MESH, attackerKey)).toString('base64')
  await s2.send({ t: 'push', env })
  t.equal((await s2.recv()).t, 'ok')
  await s2.send({ t: 'push', env })
  t.same(await s2.recv(), { t: 'error', code: 'out-of-order' }, 'a second push on one stream is refused')
  s2.io.abort(new Error('done'))
})

t.test('adverts pushed by sync count against the same per-member quota as gossip', async (t) => {
  const acceptedBefore = A.stats.accepted
  const quotaBefore = A.stats.dropped.quota ?? 0
  const refusedBefore = A.stats.refused.sync
  const N = 30
  const from = A.replica.get(X)!.advert.seq + 1
  for (let i = 0; i < N; i++) {
    const s = await rawStream(syncProtocol(MESH))
    await s.send({ t: 'push', env: Buffer.from(await encodeMessage('advert', advertOf(attackerKey, from + i), MESH, attackerKey)).toString('base64') })
    const answer: Record<string, unknown> = await s.recv().catch(() => ({ t: 'closed' }))
    s.io.abort(new Error('done'))
    if (answer.t === 'error') t.equal(answer.code, 'rate-limited', 'a refused exchange says why')
  }
  const accepted = A.stats.accepted - acceptedBefore
  const cut = (A.stats.dropped.quota ?? 0) - quotaBefore
  const refused = A.stats.refused.sync - refusedBefore
  t.ok(accepted >= 1 && accepted <= 12, `A merged ${accepted} of ${N} pushed versions (advert burst 10 plus refill)`)
  t.equal(accepted + cut + refused, N, `each push was merged, cut by the advert quota (${cut}) or refused by the sync quota (${refused})`)
  t.ok(cut > 0, 'the advert quota cut pushes that the sync quota let through')
  t.ok((A.replica.get(X)?.advert.seq ?? 0) < from + N - 1, 'the last versions never entered the replica')
})

t.test('the version a member already has, signed again, is not forwarded (no free flood past the quota)', async (t) => {
  // Same incarnation and sequence, a new issuedAt: to gossipsub a new message each time.
  const held = A.replica.get(X)!.advert
  const before = { resigned: A.stats.dropped.resigned ?? 0, bIn: B.stats.gossipBytes.in, acceptedA: A.stats.accepted }
  const N = 30
  let size = 0
  for (let i = 0; i < N; i++) {
    const bytes = await encodeMessage('advert', { ...held, issuedAt: Date.now() + i + 1 }, MESH, attackerKey)
    size = bytes.length
    await attacker.services.pubsub.publish(TOPIC, bytes)
  }
  await waitFor('A to judge every copy', () => (A.stats.dropped.resigned ?? 0) - before.resigned >= N)
  t.equal((A.stats.dropped.resigned ?? 0) - before.resigned, N, 'each copy was dropped as re-signed')
  t.equal(A.stats.accepted, before.acceptedA, 'none was merged')
  t.ok(B.stats.gossipBytes.in - before.bIn < N * size / 2, `B received ${B.stats.gossipBytes.in - before.bIn} bytes of gossip meanwhile, not the ${N * size} of the copies`)
})

t.test('a flood of probe frames is answered only within the per-peer quota', async (t) => {
  const refusedBefore = A.stats.refused.probe
  const s = await rawStream(probeProtocol(MESH), MAX_PROBE_FRAME_BYTES)
  const N = 200
  for (let n = 0; n < N; n++) await s.send({ t: 'ping', n })
  // A probe request for a target A holds no connection to: before the quota, each made A probe
  // (and, earlier, dial) on the attacker's behalf.
  for (let n = N; n < N + 50; n++) await s.send({ t: 'req', n, target: B.peerId })
  await waitFor('A to refuse frames over the quota', () => A.stats.refused.probe - refusedBefore > 0)
  let acks = 0
  const counting = (async () => { for (;;) { await s.recv(); acks++ } })().catch(() => {})
  await waitFor('every frame to be answered or refused', () => A.stats.refused.probe - refusedBefore + acks >= N + 50 - 5, 5_000).catch(() => {})
  s.io.abort(new Error('done'))
  await counting
  const refused = A.stats.refused.probe - refusedBefore
  t.ok(acks <= 60, `A answered ${acks} of ${N + 50} frames (burst 40 plus refill)`)
  t.ok(refused >= N + 50 - 60, `and refused ${refused}`)
})

t.test('the member cap holds against a flood of fresh keys (each with a fresh quota)', async (t) => {
  const capBefore = A.stats.dropped['member-cap'] ?? 0
  const sybils = await Promise.all(Array.from({ length: 30 }, async () => generateKeyPair('Ed25519')))
  for (const key of sybils) {
    const res = await attacker.services.pubsub.publish(TOPIC, await encodeMessage('advert', advertOf(key, 0, { name: 'sybil' }), MESH, key))
    t.ok(res.recipients.length > 0)
  }
  await waitFor('A to judge the flood', () => A.replica.size + (A.stats.dropped['member-cap'] ?? 0) - capBefore >= 16 + 1)
  await waitFor('A to refuse members over the cap', () => (A.stats.dropped['member-cap'] ?? 0) - capBefore > 0)
  t.ok(A.replica.size <= 16, `A holds ${A.replica.size} members (cap 16)`)
  for (const n of [A.peerId, B.peerId, boot.peerId, X]) t.equal(A.replica.get(n)?.liveness, 'alive', 'the members it had stay')
})

t.test('after all cases the honest nodes still work and everything stops cleanly', async (t) => {
  await B.updateAdvert({ tools: [{ name: 'get_b', capability: 'b', version: '1.2.0' }] })
  const seq = B.advert!.seq
  await waitFor('B\'s update to reach A', () => A.replica.get(B.peerId)?.advert.seq === seq)
  await attacker.stop()
  await Promise.all([A.stop(), B.stop()])
  await boot.stop()
  t.pass('all nodes stopped')
})
