// A stopped node leaves nothing running: no sockets, no servers, no timers of its own.
import t from 'tap'
import { createGossipNode } from '../../src/gossip/gossip-node.ts'
import { systemClock } from '../../src/clock.ts'
import type { Clock, TimerHandle } from '../../src/clock.ts'

/** The system clock, counting the timers the mesh holds (libp2p's own internals use their own). */
function countingClock (): Clock & { pending: Set<TimerHandle> } {
  const pending = new Set<TimerHandle>()
  return {
    pending,
    now: () => systemClock.now(),
    setTimeout (fn, ms) {
      const h: TimerHandle = systemClock.setTimeout(() => { pending.delete(h); fn() }, ms)
      pending.add(h)
      return h
    },
    clearTimeout (h) { pending.delete(h); systemClock.clearTimeout(h) },
  }
}

const handles = (): Record<string, number> => {
  const count: Record<string, number> = {}
  for (const r of process.getActiveResourcesInfo()) count[r] = (count[r] ?? 0) + 1
  return count
}

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
  // Closed sockets are released on the next turns of the event loop.
  for (let i = 0; i < 50; i++) {
    const now = handles()
    if ((now.TCPSocketWrap ?? 0) <= (baseline.TCPSocketWrap ?? 0) && (now.TCPServerWrap ?? 0) <= (baseline.TCPServerWrap ?? 0)) break
    await new Promise((resolve) => setImmediate(resolve))
    await new Promise((resolve) => setTimeout(resolve, 10))
  }
  const after = handles()
  t.equal(after.TCPSocketWrap ?? 0, baseline.TCPSocketWrap ?? 0, 'no TCP socket left')
  t.equal(after.TCPServerWrap ?? 0, baseline.TCPServerWrap ?? 0, 'no listening server left')
  t.equal(clock.pending.size, 0, 'no timer of the mesh left')
})

t.test('stop before start and a failed start are harmless', async (t) => {
  const n = createGossipNode({ name: 'never-started', ephemeralKey: true })
  await n.stop()
  t.throws(() => n.replica, { code: 'MESH_ERR_NOT_STARTED' })
})
