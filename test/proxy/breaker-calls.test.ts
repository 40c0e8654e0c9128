// Circuit breaking over real libp2p and real HTTP: after N calls in a row fail on a provider,
// this caller stops sending it calls for a cool-off (they go to another provider, or fail at once
// with MESH_ERR_CALL_CIRCUIT_OPEN when it is the only one), then one trial call goes through.
// The providers count the calls that reach their servers.
import t from 'tap'
import { createMeshNode } from '../../src/node.ts'
import type { MeshNode } from '../../src/node.ts'
import { testNodeOptions } from '../helpers/mesh.ts'
import { waitFor } from '../helpers/wait.ts'
import { flakyProvider } from '../helpers/flaky-provider.ts'

const MESH = `breaker-${process.pid}`
t.setTimeout(60_000)
const nodes: MeshNode[] = []
t.teardown(async () => { await Promise.all(nodes.map(async (n) => n.stop())) })

const caller = createMeshNode(testNodeOptions(MESH, 'caller', { breaker: { consecutiveFailures: 3, baseEjectionMs: 600 } }))
nodes.push(caller)
await caller.start()
const broken = await flakyProvider(MESH, 'broken', true, caller.gossip.addrs)
nodes.push(broken.node)
await waitFor('the caller to see the provider', () => caller.explain('charge').ranked.length === 1)

t.test('the only provider: its circuit opens, calls fail at once without reaching it, then a trial goes through', async (t) => {
  for (let i = 0; i < 3; i++) await t.rejects(caller.call('charge'), { code: 'MESH_ERR_CALL_FAILED' }, `failure ${i + 1}`)
  t.equal(broken.hits, 3)
  const start = Date.now()
  await t.rejects(caller.call('charge'), { code: 'MESH_ERR_CALL_CIRCUIT_OPEN', message: /circuit of every provider is open \(broken: 3 failures in a row\); a trial call goes through in 1 s/, details: { notSent: true } })
  t.ok(Date.now() - start < 100, 'at once')
  t.equal(broken.hits, 3, 'nothing reached the provider')
  await new Promise((resolve) => setTimeout(resolve, 650))
  await t.rejects(caller.call('charge'), { code: 'MESH_ERR_CALL_FAILED' }, 'the trial call, after the cool-off, fails')
  t.equal(broken.hits, 4, 'one trial reached it')
  await t.rejects(caller.call('charge'), { code: 'MESH_ERR_CALL_CIRCUIT_OPEN' }, 'open again, for twice as long')
  broken.failing = false
  await new Promise((resolve) => setTimeout(resolve, 1_250))
  t.same(await caller.call('charge'), { from: 'broken' }, 'the trial passes: the circuit closes')
  t.same(await caller.call('charge'), { from: 'broken' }, 'calls flow again')
  t.equal(broken.hits, 6)
})

t.test('with another provider, an open circuit sends every call to the other', async (t) => {
  broken.failing = true
  const healthy = await flakyProvider(MESH, 'healthy', false, caller.gossip.addrs)
  nodes.push(healthy.node)
  await waitFor('the caller to see both', () => caller.explain('lookup').ranked.length === 2)
  broken.hits = 0
  const lookup = caller.dependency<{ from: string }>({ capability: 'lookup', retries: 1 })
  for (let i = 0; i < 20; i++) t.equal((await lookup({})).from, 'healthy', `call ${i + 1} served`)
  t.equal(broken.hits, 3, 'the broken provider got three calls (each retried elsewhere), then none: its circuit opened')
})
