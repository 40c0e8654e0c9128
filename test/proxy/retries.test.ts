// Retries over real libp2p and real HTTP: a call that failed after sending (here, HTTP 500 from a
// provider's server) is sent again only for read-only or idempotent tools, at most `retries`
// times, after a backoff, to another provider first; one error lists every attempt. Providers
// count the calls that reach them, so the attempt counts are exact.
import t from 'tap'
import { createMeshNode } from '../../src/node.ts'
import type { MeshNode } from '../../src/node.ts'
import { testNodeOptions } from '../helpers/mesh.ts'
import { waitFor } from '../helpers/wait.ts'
import { flakyProvider } from '../helpers/flaky-provider.ts'
import type { FlakyProvider } from '../helpers/flaky-provider.ts'

const MESH = `retries-${process.pid}`
t.setTimeout(60_000)
const nodes: MeshNode[] = []
t.teardown(async () => { await Promise.all(nodes.map(async (n) => n.stop())) })

const providers: Record<string, FlakyProvider> = {}
async function provider (name: string, failing: boolean, bootstrap: string[]): Promise<MeshNode> {
  providers[name] = await flakyProvider(MESH, name, failing, bootstrap)
  nodes.push(providers[name].node)
  return providers[name].node
}
/** Calls that reached each provider's server. */
const hits = new Proxy({} as Record<string, number>, { get: (_t, k: string) => providers[k]?.hits ?? 0 })

// Circuit breaking is tested on its own (breaker-calls.test.ts): here it never opens.
const caller = createMeshNode(testNodeOptions(MESH, 'caller', { retryDelayMs: 50, retryMaxDelayMs: 200, breaker: { consecutiveFailures: 1_000 } }))
nodes.push(caller)
await caller.start()
const broken = await provider('broken', true, caller.gossip.addrs)
await waitFor('the caller to see the broken provider', () => caller.explain('lookup').ranked.length === 1 && caller.explain('charge').ranked.length === 1)
const reset = (): void => { for (const p of Object.values(providers)) p.hits = 0 }

t.test('a read-only call is sent again up to `retries` times, then one error lists every attempt', async (t) => {
  reset()
  const before = caller.stats.retries
  const start = Date.now()
  const err = await caller.dependency({ capability: 'lookup', retries: 2 })({}).catch((e: unknown) => e) as { code: string, message: string, details: { attempts: unknown[] } }
  t.equal(err.code, 'MESH_ERR_CALL_FAILED')
  t.equal(hits.broken, 3, 'exactly 1 + 2 attempts reached the provider')
  t.equal(err.details.attempts.length, 3, 'the error lists the three attempts')
  t.match(err.message, /attempt 1 \(broken\): .*HTTP 500.*attempt 3 \(broken\)/)
  t.equal(caller.stats.retries - before, 2, 'counted as two retries')
  // Full jitter: the two backoffs are at most 50 and 100 ms.
  t.ok(Date.now() - start < 2_000, `the backoffs are bounded (${Date.now() - start} ms in all)`)
})

t.test('no retries by default, and none for a tool that is neither read-only nor idempotent', async (t) => {
  reset()
  await t.rejects(caller.call('lookup'), { code: 'MESH_ERR_CALL_FAILED' })
  t.equal(hits.broken, 1, 'the default is one attempt (retries 0)')
  reset()
  await t.rejects(caller.dependency({ capability: 'charge', retries: 3 })({}), { code: 'MESH_ERR_CALL_FAILED' })
  t.equal(hits.broken, 1, 'charge may have run: it is not sent again')
})

t.test('a provider\'s recommended retries stand in for the node default; the dependency\'s win', async (t) => {
  reset()
  await t.rejects(caller.call('advised'), { code: 'MESH_ERR_CALL_FAILED' })
  t.equal(hits.broken, 3, 'the advertised 2 retries: 3 attempts, where the node default is 1')
  reset()
  await t.rejects(caller.dependency({ capability: 'advised', retries: 0 })({}), { code: 'MESH_ERR_CALL_FAILED' })
  t.equal(hits.broken, 1, 'the dependency\'s retries: 0 wins')
})

t.test('a per-call retries overrides the dependency\'s; bad values are refused with their own code', async (t) => {
  reset()
  await t.rejects(caller.dependency({ capability: 'lookup', retries: 3 })({}, { retries: 1 }), { code: 'MESH_ERR_CALL_FAILED' })
  t.equal(hits.broken, 2, 'one retry, as the call said')
  t.throws(() => caller.dependency({ capability: 'lookup', retries: -1 }), { code: 'MESH_ERR_RESOLVE_INVALID_SPEC' })
  await t.rejects(caller.dependency('lookup')({}, { retries: 1.5 }), { code: 'MESH_ERR_RESOLVE_INVALID_SPEC' })
})

t.test('a retry goes to another provider first', async (t) => {
  await provider('healthy', false, caller.gossip.addrs)
  await waitFor('the caller to see both providers', () => caller.explain('lookup').ranked.length === 2)
  reset()
  const before = caller.stats.retries
  const lookup = caller.dependency<{ from: string }>({ capability: 'lookup', retries: 1 })
  for (let i = 0; i < 10; i++) t.equal((await lookup({})).from, 'healthy', `call ${i + 1} is served by the healthy provider`)
  t.equal(hits.healthy, 10, 'each call reached the healthy provider once')
  t.equal(caller.stats.retries - before, hits.broken, `every attempt on the broken provider (${hits.broken}) was followed by a retry elsewhere`)
  t.ok(hits.broken > 0, 'round robin sent some calls to the broken provider first')
  reset()
  await t.rejects(caller.dependency({ capability: 'charge', retries: 1 })({}).then(async () => caller.dependency({ capability: 'charge', retries: 1 })({})).then(async () => caller.dependency({ capability: 'charge', retries: 1 })({})), { code: 'MESH_ERR_CALL_FAILED' }, 'charge fails when it lands on the broken provider, with no retry')
  t.equal(hits.broken, 1, 'exactly one charge reached the broken provider')
})
