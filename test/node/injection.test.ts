// Injection between in-process agents over real libp2p (TCP) and real HTTP.
import t from 'tap'
import { z } from 'zod'
import { request } from 'undici'
import { createMeshNode } from '../../src/node.ts'
import { createGossipNode } from '../../src/gossip/gossip-node.ts'
import type { MeshNode } from '../../src/node.ts'
import { isMeshError } from '../../src/errors.ts'
import type { MeshError } from '../../src/errors.ts'
import { testNodeOptions, startNode } from '../helpers/mesh.ts'
import { waitFor } from '../helpers/wait.ts'

const MESH = `inject-${process.pid}`
const Forecast = z.object({ city: z.string(), tempC: z.number(), by: z.string() })
const nodes: MeshNode[] = []
t.teardown(async () => { await Promise.all(nodes.map((n) => n.stop())) })

function weather (name: string, tags: string[], tempC: number) {
  return (n: MeshNode): void => {
    n.tool('get_weather', { capability: 'weather', tags, input: { city: z.string() }, output: { city: z.string(), tempC: z.number(), by: z.string() } },
      ({ city }) => ({ city, tempC, by: name }))
  }
}

const first = await startNode(MESH, 'weather-basic', weather('weather-basic', ['basic'], 10))
nodes.push(first)
const join = { bootstrap: first.gossip.addrs }

t.test('a dependency is injected, called directly, and its result typed by the declared output', async (t) => {
  const planner = await startNode(MESH, 'planner', (n) => {
    n.tool('plan_trip', {
      input: { city: z.string() },
      dependencies: { weather: { capability: 'weather', output: Forecast } },
    }, async ({ city }, { weather }) => {
      const { result, provider } = await weather.invoke({ city })
      return { forecast: result, via: provider.agent, available: weather.available }
    })
  }, join)
  nodes.push(planner)
  await waitFor('planner sees weather', () => planner.explain('weather').selected !== null)
  const out = await planner.call<{ forecast: z.infer<typeof Forecast>, via: string, available: boolean }>('plan_trip', { city: 'Oslo' })
  t.same(out, { forecast: { city: 'Oslo', tempC: 10, by: 'weather-basic' }, via: 'weather-basic', available: true })
  const invoked = await planner.dependency('plan_trip').invoke({ city: 'Rome' })
  t.equal(invoked.provider.local, true, 'a dependency on the agent\'s own capability runs in process')
  t.equal(invoked.provider.agent, 'planner')
})

t.test('a better provider that appears is used on the next call, with no restart', async (t) => {
  const caller = await startNode(MESH, 'caller-better', () => {}, join)
  nodes.push(caller)
  const w = caller.dependency<z.infer<typeof Forecast>>({ capability: 'weather', tags: ['+claude'] })
  await waitFor('weather available', () => w.available)
  t.equal((await w({ city: 'x' })).by, 'weather-basic')
  const claude = await startNode(MESH, 'weather-claude', weather('weather-claude', ['claude'], 20), join)
  nodes.push(claude)
  await waitFor('claude provider seen', () => caller.explain({ capability: 'weather', tags: ['+claude'] }).selected?.agent === 'weather-claude')
  t.equal((await w({ city: 'x' })).by, 'weather-claude', 'the preferred provider serves the next call')
  t.equal((await w({ city: 'y' })).by, 'weather-claude')
})

t.test('equal providers share the load by round robin', async (t) => {
  const twin = await startNode(MESH, 'weather-basic-2', weather('weather-basic-2', ['basic'], 10), join)
  nodes.push(twin)
  const caller = await startNode(MESH, 'caller-rr', () => {}, join)
  nodes.push(caller)
  const w = caller.dependency<z.infer<typeof Forecast>>({ capability: 'weather', tags: ['basic'] })
  await waitFor('both basic providers seen', () => caller.explain({ capability: 'weather', tags: ['basic'] }).ranked.length === 2)
  const served = new Set<string>()
  for (let i = 0; i < 6; i++) served.add((await w({ city: 'z' })).by)
  t.same([...served].sort(), ['weather-basic', 'weather-basic-2'])
})

t.test('a provider that refuses connections is skipped for the next candidate at once', async (t) => {
  // A member that gossips and answers probes (so every replica holds it alive and preferred) but
  // whose advertised MCP endpoint refuses connections: the failover path, deterministically.
  const refusing = createGossipNode({
    mesh: MESH, name: 'weather-refusing', ephemeralKey: true, colocated: true, bootstrap: join.bootstrap,
    advert: { endpoint: 'http://127.0.0.1:9/mcp', tools: [{ name: 'get_weather', capability: 'weather', version: '9.0.0', tags: ['basic', 'claude'] }] },
  })
  await refusing.start()
  t.teardown(() => refusing.stop())
  const caller = await startNode(MESH, 'caller-failover', () => {}, join)
  nodes.push(caller)
  const spec = { capability: 'weather', tags: ['+claude'] }
  await waitFor('the refusing provider ranked first', () => caller.explain(spec).selected?.agent === 'weather-refusing')
  const before = caller.stats.failovers
  const w = await caller.dependency<z.infer<typeof Forecast>>(spec).invoke({ city: 'x' })
  t.not(w.provider.agent, 'weather-refusing', 'another provider served the call')
  t.equal(caller.stats.failovers, before + 1, 'one failover')
  t.same(caller.stats.failed, {}, 'no call failed')
  // Under load a probe may have marked it suspect meanwhile (then it ranks last anyway); while it
  // still ranks first, the next call must try it last and need no failover.
  const stillFirst = caller.explain(spec).selected?.agent === 'weather-refusing'
  const again = await caller.dependency<z.infer<typeof Forecast>>(spec).invoke({ city: 'y' })
  t.not(again.provider.agent, 'weather-refusing')
  if (stillFirst) t.equal(caller.stats.failovers, before + 1, 'the next call tries it last, so it needs no failover')
  else t.comment('weather-refusing turned suspect meanwhile: it ranks last without the avoid list')
})

t.test('NO_PROVIDER names the capability, the filters and what the mesh offers', async (t) => {
  const caller = await startNode(MESH, 'caller-none', () => {}, join)
  nodes.push(caller)
  await waitFor('weather seen', () => caller.explain('weather').selected !== null)
  const err = await caller.call({ capability: 'weather', tags: ['gpt'], version: '^2' }, { city: 'x' }).catch((e: unknown) => e)
  t.match(err, { code: 'MESH_ERR_CALL_NO_PROVIDER', details: { capability: 'weather', specs: [{ capability: 'weather', tags: ['gpt'], version: '^2' }] } })
  t.match((err as Error).message, /capability weather, version \^2, tags gpt/)
  t.match((err as Error).message, /meshctl explain weather/)
  const none = await caller.call('translate', {}).catch((e: unknown) => e)
  t.match(none, { code: 'MESH_ERR_CALL_NO_PROVIDER' })
  t.ok(((none as { details: { offered: string[] } }).details.offered).includes('weather'), 'it lists what the mesh offers instead')
  t.equal(caller.dependency('translate').available, false)
})

t.test('the settle window lets an early call wait for its first provider', async (t) => {
  // A window far longer than starting a node takes, even on a busy machine: the test is about waiting.
  const caller = createMeshNode(testNodeOptions(MESH, 'caller-settle', { ...join, settleMs: 60_000 }))
  nodes.push(caller)
  await caller.start()
  const started = Date.now()
  // The provider does not exist yet: it is created only after the call is made, so the call can
  // only succeed by waiting (without the window it fails at once with NO_PROVIDER).
  t.equal(caller.dependency('late_capability').available, false, 'no provider when the call is made')
  const pending = caller.call<{ word: string }>('late_capability', { word: 'hello' })
  const late = await startNode(MESH, 'late', (n) => {
    n.tool('late_tool', { capability: 'late_capability', input: { word: z.string() } }, ({ word }) => ({ word }))
  }, join)
  nodes.push(late)
  t.same(await pending, { word: 'hello' }, 'the call waited and was served')
  t.ok(Date.now() - started < 60_000, 'served before the window closed')
})

t.test('bad arguments fail with MESH_ERR_CALL_INVALID_ARGS and the validation message', async (t) => {
  const caller = await startNode(MESH, 'caller-bad', () => {}, join)
  nodes.push(caller)
  await waitFor('weather seen', () => caller.dependency('weather').available)
  const err = await caller.call('weather', { city: 42 }).catch((e: unknown) => e)
  t.match(err, { code: 'MESH_ERR_CALL_INVALID_ARGS' })
  t.match((err as { details: { validation: string } }).details.validation, /city/)
})

t.test('an in-process call checks the output schema, as a remote call does', async (t) => {
  const self = await startNode(MESH, 'self-liar', (n) => {
    n.tool('liar', { capability: 'liar', output: { n: z.number() } }, () => ({ n: 'not a number' }))
    n.tool('honest', { capability: 'honest', output: { n: z.number() } }, () => ({ n: 1 }))
  }, join)
  nodes.push(self)
  const honest = await self.dependency('honest').invoke()
  t.equal(honest.provider.local, true, 'a dependency on its own capability runs in process')
  t.same(honest.result, { n: 1 })
  const err = await self.call('liar').catch((e: unknown) => e)
  t.ok(isMeshError(err, 'MESH_ERR_CALL_INVALID_OUTPUT'), 'a result that breaks the tool\'s own output schema is an error, not a value')
  t.same(self.stats.failed, { MESH_ERR_CALL_INVALID_OUTPUT: 1 })
})

t.test('readyz is 503 until the first sync with the mesh', async (t) => {
  const lonely = createMeshNode(testNodeOptions(MESH, 'lonely', { bootstrap: ['/ip4/127.0.0.1/tcp/9/p2p/12D3KooWLmbNTmpTYWh5ZtY2x8fjJ8yhLGRKmMsZVsvoyYV1pqH4'] }))
  nodes.push(lonely)
  await lonely.start()
  const res = await request(lonely.url.replace('/mcp', '/readyz'))
  t.equal(res.statusCode, 503)
  t.same(await res.body.json(), { status: 'starting' })
})

t.test('tools are validated when declared', async (t) => {
  const n = createMeshNode(testNodeOptions(MESH, 'bad-tools'))
  t.throws(() => n.tool('x', { version: 'one' }, () => 1), { code: 'MESH_ERR_TOOL_INVALID' })
  t.throws(() => n.tool('y', { dependencies: { d: { capability: '' } } }, () => 1), { code: 'MESH_ERR_TOOL_INVALID' })
  n.tool('z', {}, () => 1)
  t.throws(() => n.tool('z', {}, () => 1), { code: 'MESH_ERR_TOOL_INVALID' }, 'a name is taken once')
  t.throws(() => createMeshNode(testNodeOptions(MESH, 'bad-opts', { http: { port: -1 } })), { code: 'MESH_ERR_CONFIG_INVALID', details: { fields: ['http.port'] } })
})
