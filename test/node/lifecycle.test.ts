// A stopped agent leaves nothing running: no listeners, no sockets (HTTP pools included), no timers
// of the mesh's own (libp2p keeps a few internal timers briefly; gossip/lifecycle.test.ts has more).
import t from 'tap'
import { z } from 'zod'
import { createMeshNode } from '../../src/node.ts'
import { countingClock, handles, settleHandles } from '../helpers/resources.ts'
import { testNodeOptions } from '../helpers/mesh.ts'


t.test('start, calls, stop: nothing is left behind, and stop is idempotent', async (t) => {
  const baseline = handles()
  const clock = countingClock()
  const mesh = `lifecycle-${process.pid}`
  const a = createMeshNode(testNodeOptions(mesh, 'a'), { clock })
  a.tool('echo', { input: { text: z.string() } }, ({ text }) => ({ text }))
  await a.start()
  const b = createMeshNode(testNodeOptions(mesh, 'b', { bootstrap: a.gossip.addrs }), { clock })
  await b.start()
  await b.ready()
  t.same(await b.call('echo', { text: 'hi' }), { text: 'hi' }, 'a call went through (a pooled connection is open)')
  t.ok(clock.pending.size > 0, 'timers run while the nodes run')
  await Promise.all([b.stop(), b.stop()])
  await a.stop()
  await a.stop()
  const after = await settleHandles(baseline) // closed sockets are released over the next turns
  t.equal(after.TCPSocketWrap ?? 0, baseline.TCPSocketWrap ?? 0, 'no TCP socket left (gossip, MCP endpoint, client pools)')
  t.equal(after.TCPServerWrap ?? 0, baseline.TCPServerWrap ?? 0, 'no listener left')
  t.equal(clock.pending.size, 0, 'no timer of the mesh left')
  await t.rejects(b.call('echo', { text: 'late' }), { code: 'MESH_ERR_NOT_STARTED' }, 'a stopped node makes no calls')
})

t.test('stop before start is harmless; tools cannot be added after start', async (t) => {
  const n = createMeshNode(testNodeOptions('never', 'never'))
  await n.stop()
  const m = createMeshNode(testNodeOptions(`late-${process.pid}`, 'late'))
  await m.start()
  t.throws(() => m.tool('x', {}, () => 1), { code: 'MESH_ERR_TOOL_INVALID' })
  await m.stop()
})

t.test('an agent whose endpoint peers could not call fails at start, naming the options to fix', async (t) => {
  const baseline = handles()
  // Bound to every interface with no announced host: the URL would say 0.0.0.0, which every
  // caller refuses (it reaches the caller's own host). Before, the agent started and was ignored.
  const n = createMeshNode(testNodeOptions(`unreachable-${process.pid}`, 'unreachable', { http: { host: '0.0.0.0' } }))
  n.tool('echo', { input: { text: z.string() } }, ({ text }) => ({ text }))
  await t.rejects(n.start(), { code: 'MESH_ERR_CONFIG_INVALID', details: { fields: ['http.announceHost', 'announce'] } })
  // No stop(): a failed start must not leave its listeners for the caller to clean up.
  const after = await settleHandles(baseline)
  t.ok((after.TCPServerWrap ?? 0) <= (baseline.TCPServerWrap ?? 0), 'the listeners it had opened (endpoint, libp2p) are closed again')
})
