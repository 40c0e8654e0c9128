/**
 * Hostile gossip over real libp2p (TCP on 127.0.0.1, one process).
 *
 * A bootstrap and two honest agents (A, B) form a mesh. An attacker joins the same gossipsub topic with
 * a raw libp2p host (built with `createHost`, so the test holds its gossipsub instance and can publish
 * any bytes). The attacker is connected to A only (B and the bootstrap deny it), so every hostile
 * message reaches B only if A forwards it. After each hostile message the attacker sends a valid one
 * (a marker) on the same path; once B holds the marker, B has had every message A forwarded before
 * it, so "B never saw it" is checked after an event, not a guessed window. What is compared is only
 * what the attacker could change: the drop counters, the attacker's own entry, and adverts of honest
 * members that they never issued (honest members re-advertise on their own at any time).
 */
import t from 'tap'
import { generateKeyPair } from '@libp2p/crypto/keys'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import { multiaddr } from '@multiformats/multiaddr'
import { createGossipNode } from '../../src/gossip/gossip-node.ts'
import type { GossipNode } from '../../src/gossip/gossip-node.ts'
import { createHost, advertTopic } from '../../src/gossip/host.ts'
import type { MeshHost } from '../../src/gossip/host.ts'
import { encodeMessage, Kinds } from '../../src/gossip/codec.ts'
import type { DropReason, Suspect } from '../../src/gossip/codec.ts'
import { ProbeChannel, probeProtocol, serveProbe, MAX_PROBE_FRAME_BYTES } from '../../src/gossip/probe.ts'
import { lpFrames } from '../../src/gossip/libp2p-net.ts'
import type { ProbeContext } from '../../src/gossip/probe.ts'
import { parseGossipOptions } from '../../src/config.ts'
import type { Advert, Liveness } from '../../src/topology/advert.ts'
import { waitFor } from '../helpers/wait.ts'

type TapTest = Parameters<Parameters<typeof t.test>[0]>[0]

const MESH = 'hostile'
const TOPIC = advertTopic(MESH)
const HEADER = 7
const SIG = 64
// Small suspicion timeouts, so a suspicion that is not refuted would end in a death soon; probing is default.
const timing = { suspicionMinTimeoutMs: 300, suspicionMaxTimeoutMs: 1500 }

const dropped = (n: GossipNode, reason: DropReason): number => n.stats.dropped[reason] ?? 0
const droppedTotal = (n: GossipNode): number => Object.values(n.stats.dropped).reduce((a, b) => a + (b ?? 0), 0)
const envelopeKey = (bytes: Uint8Array): string => Buffer.from(bytes).toString('base64')

// ---- the mesh -------------------------------------------------------------------------------------

const nodes: GossipNode[] = []
t.teardown(async () => { await Promise.all(nodes.map(async (n) => n.stop())) })

const boot = createGossipNode({ name: 'boot', mesh: MESH, role: 'bootstrap', ephemeralKey: true, colocated: true, timing })
nodes.push(boot)
await boot.start()
const honest = (name: string, capability: string): GossipNode => createGossipNode({
  name, mesh: MESH, ephemeralKey: true, colocated: true, timing, bootstrap: [boot.addrs[0]],
  advert: { tools: [{ name: `get_${capability}`, capability, version: '1.0.0' }] },
})
const A = honest('a', 'weather')
const B = honest('b', 'hotels')
nodes.push(A, B)
await Promise.all([A.start(), B.start()])
await Promise.all([A.ready(), B.ready()])
await waitFor('A and B to see each other', () => A.replica.get(B.peerId)?.liveness === 'alive' && B.replica.get(A.peerId)?.liveness === 'alive')

/** Every advert the honest members signed themselves (they re-advertise at any time: publish retries, refreshes). */
const issued = new Set<string>()
for (const n of [boot, A, B]) {
  issued.add(envelopeKey(n.replica.get(n.peerId)!.envelope))
  n.replica.onChange((c) => { if (c.peerId === n.peerId) issued.add(envelopeKey(n.replica.get(n.peerId)!.envelope)) })
}

// ---- the attacker: a raw host of the same mesh, connected to A only -----------------------------

const attackerKey = await generateKeyPair('Ed25519')
const attacker: MeshHost = await createHost(parseGossipOptions({ name: 'attacker', mesh: MESH, colocated: true }, {}), attackerKey)
const X = attacker.peerId.toString()
t.teardown(async () => { await attacker.stop() })
// It answers probes, so the honest nodes' SWIM does not evict it (it must stay an up member to send a
// suspicion); it serves nothing else.
// It records the neighbour counts A's pings tell it: it never probes A, so it cannot confirm a
// suspicion of A, and A must not count it.
const toldByA: Array<{ at: number, d: number }> = []
const probeCtx: ProbeContext = { viewOf: () => undefined, onView: () => {}, degree: () => 0, onDegree: (d, from) => { if (from === A.peerId) toldByA.push({ at: Date.now(), d }) }, probeFor: async () => 'nack', bytes: { in: 0, out: 0 }, allow: () => true }
await attacker.handle(probeProtocol(MESH), async (stream, conn) => {
  try {
    await serveProbe(lpFrames(stream, MAX_PROBE_FRAME_BYTES), conn.remotePeer.toString(), probeCtx, {}) // long-lived, like a real node's
    await stream.close().catch(() => {})
  } catch (err) {
    stream.abort(err as Error)
  }
})
await attacker.start()
await Promise.all([B.deny([X]), boot.deny([X])])
await attacker.dial(multiaddr(A.addrs[0]))
const attackerConnectedAt = Date.now()
const pubsub = attacker.services.pubsub
pubsub.subscribe(TOPIC)
await waitFor('the attacker to see A subscribed', () => pubsub.getSubscribers(TOPIC).some((p) => p.toString() === A.peerId))

const incarnation = Date.now()
/** An advert of the attacker about itself (no addresses: nobody else can dial it). */
const attackerAdvert = (seq: number, over: Record<string, unknown> = {}): Advert => ({
  v: 1, mesh: MESH, name: 'attacker', role: 'agent', peerId: X, incarnation, seq, issuedAt: Date.now(),
  status: 'alive', addrs: [], tools: [{ name: 'evil', capability: 'weather', version: '9.9.9', tags: [] }], dependencies: [], ...over,
} as Advert)

async function publish (bytes: Uint8Array): Promise<void> {
  const res = await pubsub.publish(TOPIC, bytes)
  if (!res.recipients.some((p) => p.toString() === A.peerId)) throw new Error('the attacker\'s message was not sent to A')
}

/** Frames payload and signature by hand under another kind byte. */
function reframe (bytes: Uint8Array, kind: number): Uint8Array {
  const out = bytes.slice()
  out[2] = kind
  return out
}

/** Peer IDs of the markers: valid members of their own, which the checks below ignore. */
const markers = new Set<string>()

/**
 * Sends a valid advert of a throwaway member on the attacker's path, waits until B holds it (so B
 * has had everything A forwarded before it), then sends its signed leave and waits for that too, so
 * the marker leaves no member behind to probe. A fresh key per marker: no quota is spent.
 */
async function marker (): Promise<void> {
  const key = await generateKeyPair('Ed25519')
  const id = peerIdFromPrivateKey(key).toString()
  markers.add(id)
  const incarnation = Date.now()
  const advert = { v: 1, mesh: MESH, name: 'marker', role: 'agent', peerId: id, incarnation, seq: 0, issuedAt: Date.now(), status: 'alive', addrs: [], tools: [], dependencies: [] } as Advert
  await publish(await encodeMessage('advert', advert, MESH, key))
  await waitFor('a marker to reach B through A', () => B.replica.get(id) !== undefined)
  await publish(await encodeMessage('leave', { v: 1, mesh: MESH, peerId: id, incarnation, issuedAt: Date.now() }, MESH, key))
  await waitFor('the marker\'s leave to reach B through A', () => B.replica.get(id)?.liveness === 'left')
}

/**
 * Records, on A and B, every change only the attacker could cause: a new advert of its own, an
 * advert of an honest member that the member never issued, an honest member marked left.
 */
function watchForgeries (): { found: string[], stop: () => void } {
  const found: string[] = []
  const stops = ([[A, 'A'], [B, 'B']] as const).map(([n, name]) => n.replica.onChange((c) => {
    if (markers.has(c.peerId)) return
    if (c.peerId === X) {
      if (c.advertChanged || c.after === 'left') found.push(`${name}: the attacker's entry changed to seq ${c.advert.seq}, ${c.after}`)
    } else if (c.advertChanged && !issued.has(envelopeKey(n.replica.get(c.peerId)!.envelope))) {
      found.push(`${name}: holds an advert of ${c.advert.name} that ${c.advert.name} never issued`)
    } else if (c.after === 'left') {
      found.push(`${name}: ${c.advert.name} marked left`)
    }
  }))
  return { found, stop: () => { for (const s of stops) s() } }
}

/**
 * Publishes a hostile message from the attacker and checks that A dropped it for `reason` (exactly
 * once), that neither A nor B took anything the attacker could have changed, and that B never saw
 * it (A did not forward it): checked once a marker sent after it has reached B.
 */
async function rejectedBeforeForwarding (t: TapTest, bytes: Uint8Array, reason: DropReason): Promise<void> {
  const before = { dropA: dropped(A, reason), totalA: droppedTotal(A), totalB: droppedTotal(B) }
  const watch = watchForgeries()
  try {
    await publish(bytes)
    await waitFor(`A to drop the message for ${reason}`, () => dropped(A, reason) > before.dropA)
    await marker()
  } finally {
    watch.stop()
  }
  t.equal(dropped(A, reason), before.dropA + 1, `A dropped it once for ${reason}`)
  t.equal(droppedTotal(A), before.totalA + 1, 'and for no other reason')
  t.same(watch.found, [], 'neither A nor B took anything from it')
  t.equal(droppedTotal(B), before.totalB, 'B never saw it: A rejected it before forwarding')
}

// ---- cases --------------------------------------------------------------------------------------

t.test('the attacker joins as a member with a valid advert (the path A to B works)', async (t) => {
  await publish(await encodeMessage('advert', attackerAdvert(0), MESH, attackerKey))
  await waitFor('B to learn the attacker through A', () => B.replica.get(X)?.liveness === 'alive')
  t.equal(A.replica.get(X)?.liveness, 'alive')
  t.equal(attacker.getConnections().length, 1, 'the attacker is connected to A only')
  t.equal(attacker.getConnections()[0].remotePeer.toString(), A.peerId)
})

t.test('a forged signature is rejected', async (t) => {
  const bytes = await encodeMessage('advert', attackerAdvert(1, { tools: [] }), MESH, attackerKey)
  bytes[bytes.length - 5] ^= 0xff
  await rejectedBeforeForwarding(t, bytes, 'signature')
})

t.test('an advert signed by the attacker claiming A\'s peer ID is rejected', async (t) => {
  const a = A.advert!
  const refutations = A.stats.refutations
  const forged = { ...a, incarnation: a.incarnation + 1, seq: 0, issuedAt: Date.now(), tools: [{ name: 'steal', capability: 'weather', version: '9.9.9', tags: [] }] }
  await rejectedBeforeForwarding(t, await encodeMessage('advert', forged, MESH, attackerKey), 'signature')
  t.same(B.replica.get(A.peerId)?.advert.tools, a.tools, 'B still holds A\'s own tools')
  // A may re-advertise on its own (a new seq); a reaction to the forgery would be a new incarnation.
  t.equal(A.advert!.incarnation, a.incarnation, 'A kept its incarnation')
  t.equal(A.stats.refutations, refutations, 'A did not react (no refutation)')
})

t.test('a signature replayed as another kind is rejected', async (t) => {
  const env = A.replica.get(A.peerId)!.envelope
  // As a leave of A: the shape passes (an advert has every leave field), the domain prefix does not.
  await rejectedBeforeForwarding(t, reframe(env, Kinds.leave), 'signature')
  // As a suspicion: an advert lacks `subject` and `from`: invalid before the signature is checked.
  await rejectedBeforeForwarding(t, reframe(env, Kinds.suspect), 'invalid')
  t.not(B.replica.get(A.peerId)?.liveness, 'left', 'A has not left on B')
})

t.test('a message of another mesh is rejected', async (t) => {
  await rejectedBeforeForwarding(t, await encodeMessage('advert', attackerAdvert(1, { mesh: 'other' }), 'other', attackerKey), 'mesh-mismatch')
})

t.test('an oversized message is rejected', async (t) => {
  // Over quota.maxMessageBytes (64 KiB) but under gossipsub's inbound frame limit (64 KiB + 4 KiB, see
  // host.ts), so it reaches the topic validator. Validly signed: size is checked first regardless.
  const bytes = await encodeMessage('advert', attackerAdvert(1, { pad: 'x'.repeat(66 * 1024) }), MESH, attackerKey)
  t.ok(bytes.length > 64 * 1024 && bytes.length < 68 * 1024, `${bytes.length} bytes`)
  await rejectedBeforeForwarding(t, bytes, 'too-large')
})

t.test('malformed bytes are rejected', async (t) => {
  await rejectedBeforeForwarding(t, crypto.getRandomValues(new Uint8Array(500)), 'malformed')
  const valid = await encodeMessage('advert', attackerAdvert(1), MESH, attackerKey)
  await rejectedBeforeForwarding(t, valid.subarray(0, valid.length - 10), 'malformed')
  const body = new TextEncoder().encode('{"v":1,"mesh":')
  const junk = new Uint8Array(HEADER + body.length + SIG)
  junk.set([0x4d, 1, Kinds.advert])
  new DataView(junk.buffer).setUint32(3, body.length)
  junk.set(body, HEADER)
  await rejectedBeforeForwarding(t, junk, 'malformed')
})

t.test('an advert with too many tools is rejected', async (t) => {
  const tools = Array.from({ length: 65 }, (_, i) => ({ name: `t${i}`, capability: `c${i}`, version: '1.0.0', tags: [] }))
  await rejectedBeforeForwarding(t, await encodeMessage('advert', attackerAdvert(1, { tools }), MESH, attackerKey), 'too-many-tools')
})

t.test('an advert of a newer version with unknown fields is accepted by A and B', async (t) => {
  const before = { a: droppedTotal(A), b: droppedTotal(B) }
  const newer = attackerAdvert(1, {
    v: 2,
    region: 'eu-west',
    qos: { tier: 'gold', limits: [1, 2] },
    tools: [{ name: 'forecast', capability: 'weather', version: '2.0.0', tags: ['beta'], batching: true, cost: { perCall: 1 } }],
  })
  await publish(await encodeMessage('advert', newer, MESH, attackerKey))
  await waitFor('A and B to accept the newer advert', () => A.replica.get(X)?.advert.seq === 1 && B.replica.get(X)?.advert.seq === 1)
  for (const n of [A, B]) {
    const e = n.replica.get(X)!
    t.equal(e.liveness, 'alive')
    t.equal(e.advert.v, 2)
    t.same(e.advert.tools, [{ name: 'forecast', capability: 'weather', version: '2.0.0', tags: ['beta'] }], 'known fields are read, unknown ones ignored')
  }
  t.equal(droppedTotal(A), before.a, 'A dropped nothing')
  t.equal(droppedTotal(B), before.b, 'B dropped nothing')
})

// Before the flood: the suspicion counts against the attacker's quota like an advert change does.
t.test('a suspicion of healthy B by the attacker alone is refuted; B is not declared dead', async (t) => {
  const seen: Liveness[] = []
  const unsubscribe = A.replica.onChange((c) => { if (c.peerId === B.peerId) seen.push(c.after) })
  t.teardown(unsubscribe)
  const bootSeen: Liveness[] = []
  const unsubscribeBoot = boot.replica.onChange((c) => { if (c.peerId === B.peerId) bootSeen.push(c.after) })
  t.teardown(unsubscribeBoot)
  const inc = B.advert!.incarnation
  const refutations = B.stats.refutations
  const s: Suspect = { v: 1, mesh: MESH, subject: B.peerId, incarnation: inc, from: X, issuedAt: Date.now() }
  await publish(await encodeMessage('suspect', s, MESH, attackerKey))
  await waitFor('A to hold B as suspect', () => seen.includes('suspect'))
  await waitFor('B to refute', () => B.stats.refutations > refutations)
  const refuted = (n: GossipNode): boolean => (n.replica.get(B.peerId)?.advert.incarnation ?? 0) > inc && n.replica.get(B.peerId)?.liveness === 'alive'
  await waitFor('A and the bootstrap to take B\'s refutation', () => refuted(A) && refuted(boot))
  t.ok(B.advert!.incarnation > inc, 'B\'s incarnation rose')
  // A and the bootstrap hold B at the refuting incarnation: the attacker's suspicion (of the old
  // one) is stale there and its death timer cancelled (test/topology/replica.test.ts checks that on
  // a manual clock), so no window is needed; what remains is that nobody declared B dead before.
  t.notOk(seen.includes('dead'), 'A never declared B dead')
  t.notOk(bootSeen.includes('dead'), 'the bootstrap never declared B dead')
})

// Regression: a claimed incarnation near Number.MAX_SAFE_INTEGER once crashed the target in its refutation.
t.test('a suspicion or probe view naming a huge incarnation neither crashes nor pins the subject', async (t) => {
  const incB = B.advert!.incarnation
  const s: Suspect = { v: 1, mesh: MESH, subject: B.peerId, incarnation: Number.MAX_SAFE_INTEGER, from: X, issuedAt: Date.now() }
  await publish(await encodeMessage('suspect', s, MESH, attackerKey))
  // A probe from the attacker that says "I hold you dead at incarnation 2^53 - 1".
  const stream = await attacker.dialProtocol(attacker.getConnections()[0].remotePeer, probeProtocol(MESH))
  const lie: ProbeContext = { ...probeCtx, viewOf: () => ({ l: 'dead', i: Number.MAX_SAFE_INTEGER }) }
  const channel = new ProbeChannel(lpFrames(stream, MAX_PROBE_FRAME_BYTES), A.peerId, lie)
  // A handles the view before it acks: the ack proves A processed the lie (and did not crash).
  t.ok(await channel.ping({ signal: AbortSignal.timeout(10_000) }), 'A acked the lying probe')
  channel.close()
  // The marker follows the suspicion on the same path: once B holds it, A (and B, had A forwarded
  // the suspicion) processed the suspicion.
  await marker()
  t.ok(B.advert!.incarnation < Number.MAX_SAFE_INTEGER - 1 && B.advert!.incarnation >= incB, 'B\'s incarnation is not pinned at the maximum')
  t.ok(A.advert!.incarnation < Number.MAX_SAFE_INTEGER - 1, 'A\'s incarnation is not pinned at the maximum')
  t.notOk(A.replica.get(B.peerId)?.suspecters?.has(X), 'A did not take the attacker\'s suspicion of B')
  t.notOk(boot.replica.get(B.peerId)?.suspecters?.has(X), 'nor did the bootstrap')
})

t.test('a flood of advert changes is cut by the quota; honest gossip still flows', async (t) => {
  const quotaBefore = dropped(A, 'quota')
  // Counted from A's replica: only the attacker changes its own advert (A.stats.accepted also
  // counts honest members' re-adverts).
  let passed = 0
  const unsubscribe = A.replica.onChange((c) => { if (c.peerId === X && c.advertChanged) passed++ })
  t.teardown(unsubscribe)
  const first = A.replica.get(X)!.advert.seq + 1
  const N = 50
  for (let i = 0; i < N; i++) await publish(await encodeMessage('advert', attackerAdvert(first + i), MESH, attackerKey))
  // Every message is either accepted (within the burst of 10 plus the slow refill) or dropped for quota.
  await waitFor('A to judge the whole flood', () => dropped(A, 'quota') - quotaBefore + passed >= N)
  const cut = dropped(A, 'quota') - quotaBefore
  t.ok(passed >= 1 && passed <= 12, `A accepted ${passed} of ${N} changes (burst 10 plus refill)`)
  t.equal(cut, N - passed, `A dropped the other ${cut} for quota`)
  t.ok(['alive', 'suspect'].includes(A.replica.get(X)?.liveness ?? 'unknown'), 'the attacker is still a member (rate limited, not evicted)')
  // B only saw what A let through.
  await waitFor('B to match A\'s view of the attacker', () => B.replica.get(X)?.advert.seq === A.replica.get(X)?.advert.seq)
  t.ok(B.replica.get(X)!.advert.seq < first + N - 1, 'the last changes of the flood never reached B')

  await A.updateAdvert({ tools: [{ name: 'get_weather', capability: 'weather', version: '1.1.0' }] })
  const seq = A.advert!.seq
  await waitFor('A\'s honest update to reach B', () => (B.replica.get(A.peerId)?.advert.seq ?? -1) >= seq)
  t.equal(B.replica.get(A.peerId)?.advert.tools[0].version, '1.1.0')
})

t.test('A does not count the attacker, a neighbour that never probes it, among those that can confirm a suspicion of it', async (t) => {
  // A new neighbour counts for its first 10 s (it may not have probed yet); this one never does.
  const after = attackerConnectedAt + 10_000
  await waitFor('a ping from A after the grace', () => toldByA.some((x) => x.at > after + 200), 20_000)
  const others = A.neighbours().filter((id) => id !== X)
  t.ok(A.neighbours().includes(X), 'the attacker is still one of A\'s neighbours')
  const last = toldByA.at(-1)!
  t.equal(last.d, others.length, `A tells ${others.length} neighbours (the ones that probe it), not ${others.length + 1}`)
})

t.test('after all cases the honest nodes still work and everything stops cleanly', async (t) => {
  await B.updateAdvert({ tools: [{ name: 'get_hotels', capability: 'hotels', version: '1.2.0' }] })
  const seq = B.advert!.seq
  await waitFor('B\'s update to reach A and the bootstrap', () => (A.replica.get(B.peerId)?.advert.seq ?? -1) >= seq && (boot.replica.get(B.peerId)?.advert.seq ?? -1) >= seq)
  t.equal(A.replica.get(B.peerId)?.advert.tools[0].version, '1.2.0')
  await waitFor('every honest node to see the others alive', () => [A, B, boot].every((n) => [A, B, boot].every((m) => n.replica.get(m.peerId)?.liveness === 'alive')))
  t.pass('A, B and the bootstrap see each other alive')
  await attacker.stop()
  t.equal(attacker.getConnections().length, 0, 'the attacker host has no connections left')
  await Promise.all([A.stop(), B.stop()])
  await boot.stop()
  t.pass('all nodes stopped')
})
