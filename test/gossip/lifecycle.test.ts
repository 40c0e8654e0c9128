// A stopped node leaves nothing running: no sockets, no servers, no timers of its own.
import t from 'tap'
import { createGossipNode } from '../../src/gossip/gossip-node.ts'
import { countingClock, handles, settleHandles } from '../helpers/resources.ts'


t.test('start and stop leave no sockets, servers or timers behind', async (t) => {
  const baseline = handles()
  const clock = countingClock()
  const a = createGossipNode({ name: 'a', ephemeralKey: true, colocated: true, advert: { tools: [{ name: 't', capability: 'c', version: '1.0.0' }] } }, { clock })
  await a.start()
  const b = createGossipNode({ name: 'b', ephemeralKey: true, colocated: true, bootstrap: [a.addrs[0]] }, { clock })
  await b.start()
  await b.ready()
  t.ok(clock.pending.size > 0, 'the nodes hold timers while running (probe, anti-entropy, upkeep loops)')
  t.equal(b.replica.get(a.peerId)?.liveness, 'alive', 'the nodes met')
  t.ok((handles().TCPSocketWrap ?? 0) > (baseline.TCPSocketWrap ?? 0), 'sockets were open while running')
  await Promise.all([b.stop(), b.stop()]) // idempotent
  await a.stop()
  await a.stop()
  const after = await settleHandles(baseline) // closed sockets are released over the next turns
  t.equal(after.TCPSocketWrap ?? 0, baseline.TCPSocketWrap ?? 0, 'no TCP socket left')
  t.equal(after.TCPServerWrap ?? 0, baseline.TCPServerWrap ?? 0, 'no listening server left')
  t.equal(clock.pending.size, 0, 'no timer of the mesh left')
})

t.test('stop before start and a failed start are harmless', async (t) => {
  const n = createGossipNode({ name: 'never-started', ephemeralKey: true })
  await n.stop()
  t.throws(() => n.replica, { code: 'MESH_ERR_NOT_STARTED' })
})
