// Two real nodes whose replicas hold the same 1,000 signed adverts: a converged anti-entropy round
// exchanges only the digest; one changed advert pulls exactly that advert.
import t from 'tap'
import { generateKeyPair } from '@libp2p/crypto/keys'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import type { PrivateKey } from '@libp2p/interface'
import { createGossipNode } from '../../src/gossip/gossip-node.ts'
import { encodeMessage } from '../../src/gossip/codec.ts'
import { AdvertSchema } from '../../src/topology/advert.ts'
import { waitFor } from '../helpers/wait.ts'

const MESH = 'ae-test'
const N = 1_000

async function signedAdvert (key: PrivateKey, i: number, seq: number) {
  const advert = AdvertSchema.parse({
    v: 1, mesh: MESH, name: `agent-${i}`, peerId: peerIdFromPrivateKey(key).toString(), incarnation: 1, seq, issuedAt: Date.now(),
    addrs: [], tools: [{ name: 'tool', capability: `cap-${i % 50}`, version: '1.0.0', tags: ['a', 'b'] }],
  })
  return { advert, envelope: await encodeMessage('advert', advert, MESH, key) }
}

t.test('anti-entropy between converged replicas of 1,000 entries exchanges only digests', async (t) => {
  // No probing or periodic anti-entropy during the measurement: only the exchanges this test runs.
  const timing = { probeIntervalMs: 3_600_000, antiEntropyIntervalMs: 3_600_000, maintainIntervalMs: 3_600_000 }
  const a = createGossipNode({ name: 'a', mesh: MESH, ephemeralKey: true, colocated: true, timing })
  await a.start()
  const b = createGossipNode({ name: 'b', mesh: MESH, ephemeralKey: true, colocated: true, timing, bootstrap: [a.addrs[0]] })
  await b.start()
  await b.ready()
  t.teardown(async () => { await b.stop(); await a.stop() })
  // A node re-issues its advert (seq + 1) while its publishes reach nobody (a fresh connection):
  // wait until each one's advert has reached the other by gossip, after which none is re-issued,
  // or the replicas could differ by that re-advert in the middle of the measurement.
  await waitFor('a and b to gossip their adverts to each other', () => a.stats.gossipBytes.out > 0 && b.stats.gossipBytes.out > 0 &&
    a.replica.get(b.peerId)?.advert.seq === b.advert!.seq && b.replica.get(a.peerId)?.advert.seq === a.advert!.seq)

  const keys = await Promise.all(Array.from({ length: N }, async () => generateKeyPair('Ed25519')))
  for (const [i, key] of keys.entries()) {
    const { advert, envelope } = await signedAdvert(key, i, 0)
    a.replica.applyAdvert(advert, envelope)
    b.replica.applyAdvert(advert, envelope)
  }
  t.equal(a.replica.digestRoot(), b.replica.digestRoot(), 'both replicas hold the same 1,002 members')

  const before = { ...b.stats.syncBytes }
  const res = await b.syncWith(a.peerId)
  const out = b.stats.syncBytes.out - before.out
  const inb = b.stats.syncBytes.in - before.in
  t.equal(res.equal, true, 'digests equal: nothing is paged')
  t.equal(res.pulled, 0, 'no advert pulled')
  t.ok(out + inb < 400, `one converged round costs ${out} bytes out and ${inb} bytes in (sync frames)`)
  t.comment(`converged round, 1,000 entries: ${out} B request + ${inb} B reply`)

  // One advert changes on a only: the round pages through one bucket and pulls that one advert.
  const changed = await signedAdvert(keys[7], 7, 1)
  a.replica.applyAdvert(changed.advert, changed.envelope)
  const before2 = { ...b.stats.syncBytes }
  const res2 = await b.syncWith(a.peerId)
  t.equal(res2.equal, false)
  t.equal(res2.pulled, 1, 'exactly the changed advert is pulled')
  t.equal(b.replica.get(changed.advert.peerId)?.advert.seq, 1, 'b now holds the new version')
  t.equal(a.replica.digestRoot(), b.replica.digestRoot(), 'replicas converged again')
  const bytes2 = b.stats.syncBytes.out - before2.out + b.stats.syncBytes.in - before2.in
  t.ok(bytes2 < 12_000, `one differing advert costs ${bytes2} bytes, far below a full snapshot`)
  t.comment(`one differing advert: ${bytes2} B in all`)

  // What the digests save: a newcomer that holds nothing pulls the whole snapshot.
  const c = createGossipNode({ name: 'c', mesh: MESH, ephemeralKey: true, colocated: true, timing, bootstrap: [a.addrs[0]] })
  await c.start()
  await c.ready()
  const fullBytes = c.stats.syncBytes.in
  t.equal(c.replica.size, N + 3, 'the joiner holds every member, paged across several frames (200 entries a page)')
  await c.stop()
  t.ok(fullBytes > 100 * bytes2, `a join snapshot (${fullBytes} B) is far larger than a digest round`)
  t.comment(`join snapshot of ${N + 2} members: ${fullBytes} B`)
})
