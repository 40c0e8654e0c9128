// Tracing across OS processes, on the defaults (mutual TLS): `meshctl call --trace` through a
// three-hop chain (planner -> weather -> forecast) with a failover in it (the first forecast
// provider crashes with the call) and a failure (flights throws). `meshctl trace` gathers the
// spans from the agents themselves and prints the tree; every span has the right parent, agent
// and status; a real OTLP/HTTP receiver got the same spans with the same parent links.
import { spawn } from 'node:child_process'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import t from 'tap'
import { startBootstrap } from '../../src/bootstrap/daemon.ts'
import { createMeshNode } from '../../src/node.ts'
import type { MeshNode } from '../../src/node.ts'
import type { SpanRecord } from '../../src/telemetry/span-ring.ts'
import { spawnExample } from '../helpers/agents.ts'
import type { ExampleAgent } from '../helpers/agents.ts'
import { collect } from '../helpers/collect.ts'
import { testNodeOptions } from '../helpers/mesh.ts'
import { startOtlpReceiver } from '../helpers/otlp-receiver.ts'
import { waitFor } from '../helpers/wait.ts'

t.setTimeout(300_000)
const root = fileURLToPath(new URL('../..', import.meta.url))
const MESH = `trace-${process.pid}`
const home = await mkdtemp(join(tmpdir(), 'mesh-trace-'))
const otlp = await startOtlpReceiver()
const boot = await startBootstrap({ mesh: MESH, home, ephemeralKey: true, colocated: true, listen: ['/ip4/127.0.0.1/tcp/0'] })
const env = { MCP_MESH_NAMESPACE: MESH, MCP_MESH_HOME: home, MCP_MESH_BOOTSTRAP: boot.addrs[0], OTEL_EXPORTER_OTLP_ENDPOINT: otlp.endpoint, OTEL_BSP_SCHEDULE_DELAY: '100' }
const agents: ExampleAgent[] = []
const nodes: MeshNode[] = []
t.teardown(async () => {
  for (const a of agents) if (a.proc.exitCode === null && a.proc.signalCode === null) a.proc.kill('SIGKILL')
  await Promise.all(agents.map((a) => a.exited))
  await Promise.all(nodes.map((n) => n.stop()))
  await boot.stop()
  await otlp.close()
  await rm(home, { recursive: true, force: true })
})
const roles = ['forecast-a', 'forecast-b', 'flights', 'weather', 'planner']
agents.push(...await Promise.all(roles.map(async (role) => await spawnExample('test/fixtures/trace-agent.ts', [role], env))))
// A watcher on the defaults, to know when every provider is visible everywhere it matters.
const watcher = createMeshNode(testNodeOptions(MESH, 'watcher', { bootstrap: boot.addrs, home, tls: { mode: 'strict' } }))
nodes.push(watcher)
await watcher.start()
await watcher.ready()
await waitFor('every provider to be seen', () => ['plan_trip', 'weather', 'flights'].every((c) => watcher.explain(c).ranked.length === 1) && watcher.explain('forecast').ranked.length === 2, 60_000)
// The callers' replicas fill as fast as the watcher's, give or take a gossip round.
await new Promise((resolve) => setTimeout(resolve, 1_000))

/** Runs meshctl as a user would, on the defaults (an identity from the local CA in the home). */
async function meshctl (args: string[]): Promise<{ code: number | null, out: string, err: string }> {
  return await collect(spawn(process.execPath, ['bin/meshctl.js', ...args, '--bootstrap', boot.addrs[0], '--mesh', MESH], {
    cwd: root, env: { ...process.env, NO_COLOR: '1', MCP_MESH_HOME: home }, stdio: ['ignore', 'pipe', 'pipe'],
  }))
}
const attr = (s: SpanRecord, k: string): unknown => s.attributes[k]

// Round robin over the two forecast providers: within two calls, one goes to forecast-a first.
// (No assertion at the top level: tap would end the file's root test, and run its teardown, early.)
let traceId = ''
let spans: SpanRecord[] = []
const calls: Array<{ code: number | null, err: string, id: string | undefined }> = []
for (let i = 0; i < 3 && traceId === ''; i++) {
  const call = await meshctl(['call', 'plan_trip', '{}', '--trace'])
  const id = call.out.match(/^trace ([0-9a-f]{32})$/m)?.[1]
  calls.push({ code: call.code, err: call.err, id })
  if (id === undefined) break
  await waitFor('the spans of the call to be kept', async () => {
    const r = await meshctl(['trace', id!, '--json'])
    spans = r.code === 0 ? (JSON.parse(r.out) as { spans: SpanRecord[] }).spans : []
    return spans.some((s) => attr(s, 'gen_ai.tool.name') === 'forecast' && s.kind === 1)
  }, 20_000)
  if (spans.some((s) => attr(s, 'mesh.attempt') === 2)) traceId = id!
}

t.test('the spans of the chain: right parents, agents and statuses', async (t) => {
  for (const c of calls) {
    t.equal(c.code, 0, `meshctl call --trace succeeded ${c.err}`)
    t.ok(c.id, 'and printed its trace ID')
  }
  t.not(traceId, '', 'a call went to the crashing forecast provider first')
  const byId = new Map(spans.map((s) => [s.spanId, s]))
  const parentOf = (s: SpanRecord): SpanRecord | undefined => s.parentSpanId === undefined ? undefined : byId.get(s.parentSpanId)
  const find = (agent: string, pred: (s: SpanRecord) => boolean): SpanRecord => {
    const s = spans.find((x) => x.agent === agent && pred(x))
    if (s === undefined) throw new Error(`no span of ${agent} matches`)
    return s
  }
  const server = (agent: string, tool: string): SpanRecord => find(agent, (s) => s.kind === 1 && attr(s, 'gen_ai.tool.name') === tool)
  const callOf = (agent: string, dep: string): SpanRecord => find(agent, (s) => attr(s, 'mesh.dependency') === dep)
  const attempt = (agent: string, dep: string, n: number): SpanRecord => find(agent, (s) => s.kind === 2 && parentOf(s) === callOf(agent, dep) && attr(s, 'mesh.attempt') === n)

  t.ok(spans.every((s) => s.traceId === traceId), 'every span is of the one trace')
  const root = server('planner', 'plan_trip')
  t.equal(parentOf(root), undefined, 'plan_trip is the root the agents kept (its parent is meshctl\'s own span)')
  t.equal(root.status, 0, 'plan_trip answered')
  t.equal(parentOf(callOf('planner', 'weather')), root)
  t.equal(parentOf(callOf('planner', 'flights')), root)
  t.equal(parentOf(server('weather', 'weather')), attempt('planner', 'weather', 1), 'the weather agent\'s span is a child of the planner\'s attempt')
  t.equal(parentOf(callOf('weather', 'forecast')), server('weather', 'weather'))
  const failed = attempt('weather', 'forecast', 1)
  t.equal(attr(failed, 'mesh.peer.agent'), 'forecast-a')
  t.equal(failed.status, 2, 'the attempt on the provider that crashed failed')
  t.match(String(attr(failed, 'error.type')), /^MESH_ERR_CALL_(PROVIDER_LOST|FAILED)$/)
  const retried = attempt('weather', 'forecast', 2)
  t.equal(attr(retried, 'mesh.peer.agent'), 'forecast-b')
  t.equal(parentOf(server('forecast-b', 'forecast')), retried, 'forecast-b served the second attempt')
  t.equal(attr(callOf('weather', 'forecast'), 'mesh.attempts'), 2)
  t.equal(callOf('weather', 'forecast').status, 0, 'and the call succeeded')
  const flights = server('flights', 'flights')
  t.equal(parentOf(flights), attempt('planner', 'flights', 1))
  t.equal(flights.status, 2)
  t.equal(attr(flights, 'error.type'), 'MESH_ERR_CALL_TOOL_ERROR', 'the flights tool failed with its own error')
  t.equal(callOf('planner', 'flights').status, 2, 'the planner\'s call of flights failed too')
  t.equal(spans.length, 11, 'planner 5, weather 4, forecast-b 1, flights 1 (forecast-a died with its span)')
  t.match(String(attr(server('weather', 'weather'), 'mesh.caller.spiffe_id')), /^spiffe:\/\/mcp-mesh\.local\/agent\/planner/, 'the server span names its caller by SPIFFE ID')
})

t.test('meshctl trace prints the tree', async (t) => {
  const r = await meshctl(['trace', traceId])
  t.equal(r.code, 0, r.err)
  const lines = r.out.split('\n')
  t.match(lines[0], `trace ${traceId}: 11 spans from 4 agents`)
  t.match(r.out, /└─ plan_trip \(planner\) \[[\d.]+ms\] ✓\n {3}├─ weather \(weather\) \[[\d.]+ms\] ✓\n {3}│ {2}└─ forecast \(forecast-b\) \[[\d.]+ms\] ✓ after 2 attempts\n {3}│ {5}├─ attempt 1 → forecast-a \[[\d.]+ms\] ✗ MESH_ERR_CALL_\w+\n {3}│ {5}└─ attempt 2 → forecast-b \[[\d.]+ms\] ✓\n {3}└─ flights \(flights\) \[[\d.]+ms\] ✗ MESH_ERR_CALL_TOOL_ERROR\n {6}└─ attempt 1 → flights \[[\d.]+ms\] ✗ MESH_ERR_CALL_TOOL_ERROR/)
  const bad = await meshctl(['trace', 'not-a-trace'])
  t.equal(bad.code, 2, 'a malformed ID is a usage error')
})

t.test('the OTLP receiver got the same spans with the same parents', async (t) => {
  await waitFor('the exporters to send the spans', () => otlp.spans.filter((s) => s.traceId === traceId).length >= 11, 20_000)
  const got = otlp.spans.filter((s) => s.traceId === traceId)
  t.equal(otlp.refused, 0, 'every export decoded as OTLP/HTTP JSON')
  t.same(new Set(got.map((s) => s.spanId)), new Set(spans.map((s) => s.spanId)), 'the same span IDs')
  for (const s of spans) {
    const o = got.find((x) => x.spanId === s.spanId)!
    t.equal(o.parentSpanId, s.parentSpanId, `${s.agent} ${s.name}: the same parent`)
    t.equal(o.service, s.agent, `${s.agent} ${s.name}: service.name is the agent`)
    // OTLP's SpanKind counts from UNSPECIFIED: internal 1, server 2, client 3.
    t.equal(o.kind, s.kind + 1, `${s.agent} ${s.name}: the same kind`)
    t.equal(o.status, s.status, `${s.agent} ${s.name}: the same status`)
  }
})
