// Calls between agents running as separate OS processes (the trip-planner examples), over real
// libp2p gossip and real HTTP: typed results, late providers, kill -9 failover, drain on SIGTERM.
import t from 'tap'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Agent, request } from 'undici'
import { LocalCa } from '../../src/identity/local-ca.ts'
import { issueSvid } from '../../src/identity/svid.ts'
import { startBootstrap } from '../../src/bootstrap/daemon.ts'
import { createMeshNode } from '../../src/node.ts'
import type { MeshNode } from '../../src/node.ts'
import { Flights, Forecast, Hotels } from '../../examples/trip-planner/shapes.ts'
import { spawnExample } from '../helpers/agents.ts'
import type { ExampleAgent } from '../helpers/agents.ts'
import { testNodeOptions } from '../helpers/mesh.ts'
import { waitFor } from '../helpers/wait.ts'

// Starting several agent processes takes most of a minute on 2 cores that other work shares: the
// bound on the whole file is wide, since it limits waiting and measures nothing.
t.setTimeout(300_000)

const MESH = `calls-${process.pid}`
const home = await mkdtemp(join(tmpdir(), 'mesh-calls-'))
// On the defaults, as the agents: mutual TLS, its identity from the local CA in the same home.
const boot = await startBootstrap({ mesh: MESH, home, ephemeralKey: true, colocated: true, listen: ['/ip4/127.0.0.1/tcp/0'] })
const env = { MCP_MESH_NAMESPACE: MESH, MCP_MESH_HOME: home, MCP_MESH_BOOTSTRAP: boot.addrs[0] }
const agents: ExampleAgent[] = []
const nodes: MeshNode[] = []
const spawnAgent = async (file: string, args: string[] = [], extra: Record<string, string> = {}): Promise<ExampleAgent> => {
  const a = await spawnExample(file, args, { ...env, ...extra })
  agents.push(a)
  return a
}
t.teardown(async () => {
  for (const a of agents) if (a.proc.exitCode === null && a.proc.signalCode === null) a.proc.kill('SIGKILL')
  await Promise.all(agents.map((a) => a.exited))
  await Promise.all(nodes.map((n) => n.stop()))
  await boot.stop()
  await rm(home, { recursive: true, force: true })
})

const trip = { destination: 'Oslo', dates: 'May 3-7' }
await Promise.all([spawnAgent('hotels.ts'), spawnAgent('flights.ts'), spawnAgent('weather.ts', ['weather-basic', 'basic', 'plain']), spawnAgent('planner.ts')])
// The tester's settle window outlasts the whole file (its bound is 300 s), so the tests that call
// inside it do not depend on how fast the ones before them ran on a busy machine.
// The example agents run on the defaults (mutual TLS, the local CA in the home folder): so does the tester.
const tester = createMeshNode(testNodeOptions(MESH, 'tester', { bootstrap: boot.addrs, settleMs: 300_000, home, tls: { mode: 'strict' } }))
nodes.push(tester)
await tester.start()
await tester.ready()

t.test('plan_trip calls three providers in other processes; results are typed as declared', async (t) => {
  const plan = await tester.call<Record<string, unknown>>('plan_trip', trip)
  t.equal(plan.destination, 'Oslo')
  t.same(plan.servedBy, { weather: 'weather-basic', hotels: 'hotels', flights: 'flights' })
  const forecast = await tester.call({ capability: 'weather', output: Forecast }, trip)
  t.ok(Forecast.safeParse(forecast).success, 'the weather result matches the declared output schema')
  t.ok(Hotels.safeParse(await tester.call({ capability: 'hotels', output: Hotels }, trip)).success)
  t.ok(Flights.safeParse(await tester.call({ capability: 'flights', output: Flights }, trip)).success)
})

t.test('bad arguments across processes: MESH_ERR_CALL_INVALID_ARGS with the validation message', async (t) => {
  const err = await tester.call('plan_trip', { destination: 7 }).catch((e: unknown) => e)
  t.match(err, { code: 'MESH_ERR_CALL_INVALID_ARGS' })
  t.match((err as { details: { validation: string } }).details.validation, /destination/)
  t.match((err as { details: { validation: string } }).details.validation, /dates/)
})

t.test('NO_PROVIDER from another process\'s view says what the mesh offers', async (t) => {
  const err = await tester.call('translate', {}, { timeout: 200 }).catch((e: unknown) => e)
  t.match(err, { code: 'MESH_ERR_CALL_TIMEOUT' }, 'inside the settle window the call waits, bounded by its timeout')
  const quick = createMeshNode(testNodeOptions(MESH, 'tester-quick', { bootstrap: boot.addrs, settleMs: 0, home, tls: { mode: 'strict' } }))
  nodes.push(quick)
  await quick.start()
  await quick.ready()
  const none = await quick.call('translate', {}).catch((e: unknown) => e)
  t.match(none, { code: 'MESH_ERR_CALL_NO_PROVIDER', details: { capability: 'translate' } })
  t.same((none as { details: { offered: string[] } }).details.offered, ['flights', 'hotels', 'plan_trip', 'weather'])
})

let claude: ExampleAgent
t.test('settle window and a later provider: an early call waits, the next plan uses the newcomer', async (t) => {
  // Its timeout only bounds the wait: starting a process can take half a minute on busy cores.
  const early = tester.call<{ by: string }>({ capability: 'weather', tags: ['claude'] }, trip, { timeout: 240_000 })
  claude = await spawnAgent('weather.ts', ['weather-claude', 'claude,premium', 'rich'])
  t.equal((await early).by, 'weather-claude', 'the early call was served once the provider appeared')
  await waitFor('planner prefers weather-claude', async () => ((await tester.call<{ servedBy: { weather: string } }>('plan_trip', trip)).servedBy.weather === 'weather-claude'), 60_000)
  t.pass('plan_trip now uses weather-claude, with no restart')
})

t.test('kill -9 a provider: the next call fails over at once, nothing fails', async (t) => {
  const before = { ...tester.stats, failed: { ...tester.stats.failed } }
  claude.proc.kill('SIGKILL')
  await claude.exited
  // Either the replica still ranks it first (then the call is refused and fails over), or a probe
  // already marked it suspect (then it ranks below weather-basic). Both must serve the call;
  // test/node/injection.test.ts checks the failover itself deterministically.
  const stillFirst = tester.explain({ capability: 'weather', tags: ['+claude'] }).selected?.agent === 'weather-claude'
  const weather = tester.dependency<{ by: string }>({ capability: 'weather', tags: ['+claude'] })
  // A call that goes out on the dead provider's pooled connection before this process has read
  // its FIN fails with "socket hang up" there; get_weather is read-only (annotations), so it is
  // sent to the other provider at once (CI on Node 22 once saw that race fail the call).
  // A probe may mark it suspect between that look and the call: then the call may never try it.
  let changed = false
  const off = tester.onTopologyChange((c) => { if (c.advert.name === 'weather-claude') changed = true })
  const w = await weather.invoke(trip)
  off()
  t.equal(w.result.by, 'weather-basic')
  if (stillFirst && !changed) t.ok(tester.stats.failovers > before.failovers, 'the refused or lost provider was skipped for the next candidate')
  else if (stillFirst) t.comment('weather-claude was marked suspect while the call was resolved: no failover was needed')
  else t.comment('weather-claude was already suspect: no failover was needed')
  t.same(tester.stats.failed, before.failed, 'no call failed')
  const plan = await tester.call<{ servedBy: { weather: string } }>('plan_trip', trip)
  t.equal(plan.servedBy.weather, 'weather-basic', 'the planner\'s own call failed over or resolved anew')
})

t.test('SIGTERM drains: the call in flight completes, a new call goes elsewhere, readyz says draining', async (t) => {
  // weather-slow-1 holds each call until it gets SIGUSR2, so the call is in flight for as long as
  // the test needs (the grace is only a bound).
  const slow1 = await spawnAgent('weather.ts', ['weather-slow-1', 'slow,first', 'plain'], { TRIP_HOLD: '1', MCP_MESH_DRAIN_GRACE_MS: '60000' })
  await spawnAgent('weather.ts', ['weather-slow-2', 'slow', 'plain'])
  await waitFor('both slow providers seen', () => tester.explain({ capability: 'weather', tags: ['slow'] }).ranked.length === 2)
  const inflight = tester.call<{ by: string }>({ capability: 'weather', tags: ['first'] }, trip).then((r) => ({ ...r, at: Date.now() }))
  let answered = false
  void inflight.then(() => { answered = true }, () => {})
  await slow1.printed(/holding a call/)
  slow1.proc.kill('SIGTERM')
  // The agents serve mutual TLS: /readyz is asked with a certificate of the same local CA.
  const svid = await issueSvid(await LocalCa.open(home, 'mcp-mesh.local', { create: false }), { name: 'readyz-reader', hosts: [] })
  const dispatcher = new Agent({ connect: { cert: svid.certPem, key: svid.keyPem, ca: svid.bundlePem, checkServerIdentity: () => undefined } })
  t.teardown(async () => { await dispatcher.close() })
  await waitFor('readyz draining', async () => {
    const res = await request(slow1.url.replace('/mcp', '/readyz'), { dispatcher }).catch(() => undefined)
    return res !== undefined && (await res.body.json() as { status: string }).status === 'draining'
  })
  const next = await tester.call<{ by: string }>({ capability: 'weather', tags: ['slow'] }, trip)
  t.equal(next.by, 'weather-slow-2', 'a new call goes to the other provider')
  t.equal(answered, false, 'the call in flight is still held on the draining provider')
  t.equal(slow1.proc.exitCode === null && slow1.proc.signalCode === null, true, 'which is still running')
  slow1.proc.kill('SIGUSR2')
  const done = await inflight
  t.equal(done.by, 'weather-slow-1', 'the call in flight completed on the draining provider')
  const exit = await slow1.exited
  t.equal(exit.signal, 'SIGTERM', 'the process ends by the signal after draining')
  t.ok(exit.at >= done.at, 'it exited only after the call in flight was answered')
})
