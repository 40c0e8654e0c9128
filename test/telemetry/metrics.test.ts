// Metrics of real agents over real libp2p and real HTTP: the counters match the calls made,
// exactly, by capability, provider and outcome, on the caller and on the provider; the gauges
// of gossip and topology are plausible; the endpoint serves only /metrics and closes on stop().
import t from 'tap'
import { z } from 'zod'
import { createMeshNode } from '../../src/node.ts'
import { MeshError } from '../../src/errors.ts'
import { testMesh, testNodeOptions } from '../helpers/mesh.ts'
import { waitFor } from '../helpers/wait.ts'
import { handles, settleHandles } from '../helpers/resources.ts'
import { parseSamples, types, value } from '../helpers/prom-text.ts'
import type { Sample } from '../helpers/prom-text.ts'

t.setTimeout(60_000)
const OK = 7
const TOOL_ERRORS = 3
const MISSING = 2
const mesh = testMesh(t, `metrics-${process.pid}`)

const provider = await mesh.start('weather', (n) => {
  n.tool('forecast', { capability: 'weather', input: { city: z.string() } }, ({ city }) => ({ city, sky: 'clear' }))
  n.tool('broken', { capability: 'broken' }, () => { throw new MeshError('MESH_ERR_CALL_TOOL_ERROR', 'the tool broke') })
})
const caller = await mesh.start('planner', () => {}, provider.gossip.addrs, { metrics: { port: 0 } })
await waitFor('the caller to see both capabilities', () => caller.explain('weather').ranked.length === 1 && caller.explain('broken').ranked.length === 1)

for (let i = 0; i < OK; i++) await caller.call('weather', { city: `c${i}` })
for (let i = 0; i < TOOL_ERRORS; i++) await caller.call('broken').catch(() => {})
for (let i = 0; i < MISSING; i++) await caller.call('nobody-offers-this').catch(() => {})

const scrape = async (url: string): Promise<{ text: string, samples: Sample[] }> => {
  const res = await fetch(url)
  if (res.status !== 200) throw new Error(`GET ${url}: ${res.status}`)
  const text = await res.text()
  return { text, samples: parseSamples(text) }
}

t.test('the caller counts its calls exactly, by capability, provider and outcome', async (t) => {
  t.match(caller.metricsUrl, /^http:\/\/127\.0\.0\.1:\d+\/metrics$/, 'served on loopback')
  const { text, samples } = await scrape(caller.metricsUrl)
  t.equal(types(text).mcp_mesh_calls_total, 'counter')
  t.equal(types(text).mcp_mesh_call_duration_seconds, 'histogram')
  const calls = (capability: string, provider: string, outcome: string): number => value(samples, 'mcp_mesh_calls_total', { capability, provider, outcome })
  t.equal(calls('weather', 'weather', 'ok'), OK)
  t.equal(calls('broken', 'weather', 'MESH_ERR_CALL_TOOL_ERROR'), TOOL_ERRORS)
  t.equal(calls('nobody-offers-this', 'none', 'MESH_ERR_CALL_NO_PROVIDER'), MISSING, 'no provider tried: provider "none"')
  t.equal(value(samples, 'mcp_mesh_calls_total'), OK + TOOL_ERRORS + MISSING, 'no other call counted')
  const failed = Object.values(caller.stats.failed).reduce((a, b) => a + b, 0)
  t.equal(value(samples, 'mcp_mesh_calls_total'), caller.stats.ok + failed, 'the same as node.stats')
  t.equal(value(samples, 'mcp_mesh_call_duration_seconds_count'), OK + TOOL_ERRORS + MISSING, 'one latency sample per call')
  t.equal(value(samples, 'mcp_mesh_call_duration_seconds_count', { capability: 'weather', outcome: 'ok' }), OK)
  t.equal(value(samples, 'mcp_mesh_call_duration_seconds_bucket', { capability: 'weather', outcome: 'ok', le: '+Inf' }), OK, 'the +Inf bucket holds every call')
  t.ok(value(samples, 'mcp_mesh_call_duration_seconds_sum', { capability: 'weather' }) > 0, 'the latencies add up to some time')
  t.equal(value(samples, 'mcp_mesh_call_retries_total'), 0)
  t.equal(value(samples, 'mcp_mesh_circuits', { state: 'open' }), 0)
  t.equal(value(samples, 'mcp_mesh_served_calls_total'), 0, 'the caller served nothing')
  t.ok(value(samples, 'mcp_mesh_connections', { kind: 'outbound' }) >= 1, 'a keep-alive connection to the provider is open')
})

t.test('the provider counts what it served, by tool and outcome (not by caller)', async (t) => {
  const text = await provider.metrics()
  const samples = parseSamples(text)
  t.equal(value(samples, 'mcp_mesh_served_calls_total', { tool: 'forecast', outcome: 'ok' }), OK)
  t.equal(value(samples, 'mcp_mesh_served_calls_total', { tool: 'broken', outcome: 'MESH_ERR_CALL_TOOL_ERROR' }), TOOL_ERRORS)
  t.equal(value(samples, 'mcp_mesh_served_calls_total'), OK + TOOL_ERRORS)
  t.equal(value(samples, 'mcp_mesh_served_call_duration_seconds_count'), OK + TOOL_ERRORS)
  t.notOk(samples.some((s) => 'caller' in s.labels), 'the caller is no label')
  t.equal(provider.metricsUrl, '', 'no endpoint without metrics.port')
  t.ok(value(samples, 'mcp_mesh_connections', { kind: 'inbound' }) >= 1, 'the caller\'s connection is open')
})

t.test('gossip and topology metrics are plausible', async (t) => {
  for (const n of [caller, provider]) {
    const samples = parseSamples(await n.metrics())
    t.equal(value(samples, 'mcp_mesh_members', { liveness: 'alive' }), mesh.nodes.length, `${n.options.name}: every node alive`)
    t.equal(value(samples, 'mcp_mesh_members', { liveness: 'dead' }), 0)
    t.equal(value(samples, 'mcp_mesh_members_declared_dead_total'), 0)
    t.ok(value(samples, 'mcp_mesh_connections', { kind: 'gossip' }) >= 1, 'a gossip neighbour')
    t.ok(value(samples, 'mcp_mesh_gossip_bytes_total', { direction: 'in' }) > 0, 'mesh bytes came in')
    t.ok(value(samples, 'mcp_mesh_gossip_bytes_total', { direction: 'out' }) > 0, 'mesh bytes went out')
    t.ok(value(samples, 'mcp_mesh_adverts_published_total') + value(samples, 'mcp_mesh_syncs_total') > 0, 'it took part in gossip or sync')
  }
})

t.test('only GET /metrics is served', async (t) => {
  const base = caller.metricsUrl.replace(/\/metrics$/, '')
  t.equal((await fetch(`${base}/`)).status, 404)
  t.equal((await fetch(`${base}/metrics/x`)).status, 404)
  t.equal((await fetch(caller.metricsUrl, { method: 'POST', body: '' })).status, 404)
  const head = await fetch(caller.metricsUrl, { method: 'HEAD' })
  t.equal(head.status, 200)
  t.match(head.headers.get('content-type'), /^text\/plain; version=0\.0\.4/)
})

t.test('members that leave or die are counted; a stopped node closes its metrics endpoint and leaves no socket', async (t) => {
  const baseline = handles()
  const extra = await mesh.start('extra', () => {}, provider.gossip.addrs, { metrics: { port: 0 } })
  await waitFor('the caller to see the extra node', () => caller.members().some((m) => m.advert.name === 'extra'))
  const url = extra.metricsUrl
  t.equal((await fetch(url)).status, 200)
  await extra.stop()
  mesh.nodes.splice(mesh.nodes.indexOf(extra), 1)
  await t.rejects(fetch(url), 'the endpoint is closed')
  // Its leave is best effort: on a loaded machine the caller may miss it and declare it dead instead.
  const gone = (): string | undefined => caller.members().find((m) => m.advert.name === 'extra' && (m.liveness === 'left' || m.liveness === 'dead'))?.liveness
  await waitFor('the caller to see it leave', () => gone() !== undefined, 30_000)
  const extraDead = gone() === 'dead' ? 1 : 0
  t.equal(value(parseSamples(await caller.metrics()), 'mcp_mesh_members', { liveness: gone()! }), 1, `counted as ${gone()}`)
  // A crash (no goodbye: its gossip closes its sockets): probes fail, the member is declared dead.
  const crashed = await mesh.start('crashed', () => {}, provider.gossip.addrs)
  await waitFor('the caller to see the crashing node', () => caller.members().some((m) => m.advert.name === 'crashed' && m.liveness === 'alive'))
  await crashed.gossip.stop({ leave: false })
  await waitFor('the caller to declare it dead', () => caller.members().some((m) => m.advert.name === 'crashed' && m.liveness === 'dead'))
  const samples = parseSamples(await caller.metrics())
  t.equal(value(samples, 'mcp_mesh_members_declared_dead_total'), 1 + extraDead, 'the crashed member declared dead (and the one that left, if its leave was missed)')
  t.equal(value(samples, 'mcp_mesh_members', { liveness: 'dead' }), 1 + extraDead)
  await crashed.stop()
  mesh.nodes.splice(mesh.nodes.indexOf(crashed), 1)
  const after = await settleHandles(baseline)
  t.equal(after.TCPServerWrap ?? 0, baseline.TCPServerWrap ?? 0, 'no listener left')
})

t.test('a start that fails closes the metrics endpoint again', async (t) => {
  const baseline = handles()
  const n = createMeshNode(testNodeOptions(`metrics-fail-${process.pid}`, 'unreachable', { http: { host: '0.0.0.0' }, metrics: { port: 0 } }))
  n.tool('echo', { input: { text: z.string() } }, ({ text }) => ({ text }))
  await t.rejects(n.start(), { code: 'MESH_ERR_CONFIG_INVALID' })
  const after = await settleHandles(baseline)
  t.ok((after.TCPServerWrap ?? 0) <= (baseline.TCPServerWrap ?? 0), 'no listener left')
})

t.test('metrics.port and host come from MCP_MESH_METRICS_*; the option is strict', async (t) => {
  const { parseMeshNodeOptions } = await import('../../src/config.ts')
  t.same(parseMeshNodeOptions({ name: 'a' }, {}).metrics, { host: '127.0.0.1' }, 'off by default, loopback')
  t.same(parseMeshNodeOptions({ name: 'a' }, { MCP_MESH_METRICS_PORT: '9464', MCP_MESH_METRICS_HOST: '0.0.0.0' }).metrics, { port: 9464, host: '0.0.0.0' })
  t.throws(() => parseMeshNodeOptions({ name: 'a' }, { MCP_MESH_METRICS_PORT: 'many' }), { code: 'MESH_ERR_CONFIG_INVALID', details: { fields: ['metrics.port'] } })
  t.throws(() => parseMeshNodeOptions({ name: 'a', metrics: { prot: 1 } as never }), { code: 'MESH_ERR_CONFIG_INVALID', details: { fields: ['metrics.prot'] } })
})
