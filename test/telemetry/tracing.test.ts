// Tracing in agents over real libp2p and real HTTP: concurrent calls each keep their own trace,
// trace context arrives in headers or in MCP `_meta`, an unsampled trace records nothing but still
// travels, tracing off records nothing, and the span ring stays within its size and age limits.
// The multi-process chain with meshctl and OTLP is test/process/trace.test.ts.
import t from 'tap'
import { Client } from '@modelcontextprotocol/sdk/client/index.js'
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js'
import { ROOT_CONTEXT, defaultTextMapGetter, trace } from '@opentelemetry/api'
import { W3CTraceContextPropagator } from '@opentelemetry/core'
import { AlwaysOnSampler } from '@opentelemetry/sdk-trace'
import { MeshTracer } from '../../src/telemetry/mesh-tracer.ts'
import { SpanRing } from '../../src/telemetry/span-ring.ts'
import { inboundContext } from '../../src/telemetry/spans.ts'
import { Tracing, samplerFromEnv } from '../../src/telemetry/tracing.ts'
import type { SpanRecord } from '../../src/telemetry/span-ring.ts'
import { testMesh } from '../helpers/mesh.ts'
import { waitFor } from '../helpers/wait.ts'

const MESH = `tracing-${process.pid}`
t.setTimeout(120_000)
const { start } = testMesh(t, MESH)
/** The traceparent each call of `leaf` arrived with, and the span active in its handler. */
const arrived: string[] = []
const active: Array<string | undefined> = []
const leaf = await start('leaf', (n) => n.tool('leaf', {}, async (_a, _d, ctx) => {
  arrived.push(String(ctx.headers.traceparent ?? ''))
  active.push(trace.getActiveSpan()?.spanContext().spanId)
  return { ok: true }
}))
const middle = await start('middle', (n) => n.tool('middle', { dependencies: { leaf: 'leaf' } }, async (_a, { leaf }) => ({ leaf: await leaf({}) })), leaf.gossip.addrs)
const caller = await start('caller', () => {}, leaf.gossip.addrs)
const quiet = await start('quiet', (n) => n.tool('quiet', {}, async () => ({ ok: true })), leaf.gossip.addrs, { tracing: { enabled: false } })
await waitFor('the caller to see the providers', () => ['leaf', 'middle', 'quiet'].every((c) => caller.explain(c).ranked.length === 1))
await waitFor('the middle agent to see the leaf', () => middle.explain('leaf').ranked.length === 1)

const traceparent = (i: number, flags = '01'): { traceId: string, header: string } => {
  const traceId = (i + 1).toString(16).padStart(32, 'a')
  return { traceId, header: `00-${traceId}-${(i + 1).toString(16).padStart(16, 'b')}-${flags}` }
}

t.test('32 concurrent calls through two hops: each trace holds its own six spans, chained', async (t) => {
  const ids = await Promise.all(Array.from({ length: 32 }, async (_, i) => {
    const { traceId, header } = traceparent(i)
    await caller.call('middle', {}, { headers: { traceparent: header } })
    return traceId
  }))
  for (const [i, id] of ids.entries()) {
    let spans: SpanRecord[] = []
    await waitFor(`the spans of call ${i}`, async () => (spans = (await caller.trace(id)).spans).length >= 6)
    t.equal(spans.length, 6, `call ${i}: caller call and attempt, middle server, call and attempt, leaf server`)
    t.ok(spans.every((s) => s.traceId === id), `call ${i}: no span of another call`)
    const byId = new Map(spans.map((s) => [s.spanId, s]))
    const roots = spans.filter((s) => s.parentSpanId === undefined || !byId.has(s.parentSpanId))
    t.equal(roots.length, 1, `call ${i}: one root, every other span under it`)
    t.equal(roots[0].parentSpanId, traceparent(i).header.split('-')[2], `call ${i}: the root's parent is the span of the traceparent the call carried`)
    t.same(spans.map((s) => s.agent).sort(), ['caller', 'caller', 'leaf', 'middle', 'middle', 'middle'])
  }
})

t.test('a handler runs in its server span: trace.getActiveSpan() is it', async (t) => {
  const { traceId, header } = traceparent(50)
  active.length = 0
  await caller.call('leaf', {}, { headers: { traceparent: header } })
  let spans: SpanRecord[] = []
  await waitFor('the leaf\'s span', async () => (spans = (await caller.trace(traceId)).spans).some((s) => s.agent === 'leaf'))
  const server = spans.find((s) => s.agent === 'leaf')!
  t.equal(server.kind, 1, 'the leaf kept its server span')
  t.equal(active[0], server.spanId, 'the active span in the handler is that server span')
})

t.test('trace context in MCP _meta, for clients that cannot set headers', async (t) => {
  const client = new Client({ name: 'plain', version: '1.0.0' })
  await client.connect(new StreamableHTTPClientTransport(new URL(leaf.url)))
  t.teardown(async () => { await client.close() })
  const { traceId, header } = traceparent(100)
  await client.callTool({ name: 'leaf', arguments: {}, _meta: { traceparent: header } })
  const { spans } = await leaf.trace(traceId, { from: ['leaf'] })
  t.equal(spans.length, 1, 'the leaf kept its server span')
  t.equal(spans[0].parentSpanId, header.split('-')[2], 'under the span _meta named')
})

t.test('an unsampled trace records nothing, but its context still travels', async (t) => {
  const { traceId, header } = traceparent(200, '00')
  arrived.length = 0
  await caller.call('middle', {}, { headers: { traceparent: header } })
  t.same((await caller.trace(traceId)).spans, [], 'no agent kept a span')
  t.match(arrived[0], new RegExp(`^00-${traceId}-[0-9a-f]{16}-00$`), 'the leaf got the trace ID, unsampled')
})

t.test('tracing off: no spans, the context passes through unchanged', async (t) => {
  const { traceId, header } = traceparent(300)
  await caller.call('quiet', {}, { headers: { traceparent: header } })
  const gathered = await caller.trace(traceId)
  t.same(gathered.spans.map((s) => s.agent).sort(), ['caller', 'caller'], 'only the caller\'s call and attempt spans')
  t.ok(gathered.asked.includes('quiet') && !gathered.unanswered.some((u) => u.agent === 'quiet'), 'the quiet agent answered, with nothing')
})

t.test('traceparent is read as OpenTelemetry\'s W3C propagator reads it', async (t) => {
  const w3c = new W3CTraceContextPropagator()
  const id = '4bf92f3577b34da6a3ce929d0e0e4736'
  const span = '00f067aa0ba902b7'
  const cases = [
    `00-${id}-${span}-01`, `00-${id}-${span}-00`, `00-${id}-${span}-ff`, `00-${id}-${span}-0a`,
    `00-${id.toUpperCase()}-${span}-01`, `00-${'0'.repeat(32)}-${span}-01`, `00-${id}-${'0'.repeat(16)}-01`,
    `ff-${id}-${span}-01`, `01-${id}-${span}-01-more`, `00-${id}-${span}-01-more`, ` 00-${id}-${span}-01`,
    `00-${id}-${span}-0`, `00-${id}-${span}-0g`, `00_${id}-${span}-01`, `00-${id.slice(1)}x-${span}-01`, '', 'garbage',
  ]
  for (const tp of cases) {
    const expected = trace.getSpanContext(w3c.extract(ROOT_CONTEXT, { traceparent: tp, tracestate: 'a=1,b=2' }, defaultTextMapGetter))
    const got = trace.getSpanContext(inboundContext({ traceparent: tp, tracestate: 'a=1,b=2' }))
    t.same(got === undefined ? undefined : { ...got, traceState: got.traceState?.serialize() }, expected === undefined ? undefined : { ...expected, traceState: expected.traceState?.serialize() }, JSON.stringify(tp))
  }
})

t.test('node.trace refuses a malformed trace ID with its code', async (t) => {
  await t.rejects(caller.trace('xyz'), { code: 'MESH_ERR_TRACE_INVALID_ID' })
  await t.rejects(caller.trace('0'.repeat(32)), { code: 'MESH_ERR_TRACE_INVALID_ID' })
})

t.test('the ring keeps its last spans and no more, and forgets old ones on query', async (t) => {
  let now = 1_000_000
  const ring = new SpanRing({ size: 64, maxAgeMs: 60_000 }, () => now)
  const tracer = new MeshTracer('x', new AlwaysOnSampler(), (s) => { ring.add(s) })
  const ids: string[] = []
  for (let i = 0; i < 1_000; i++) {
    const span = tracer.startSpan(`s${i}`)
    ids.push(span.spanContext().traceId)
    span.end()
  }
  t.equal(ring.recorded, 1_000)
  t.equal(ring.size, 64, 'at most 64 spans held')
  t.same(ring.trace(ids[0]), [], 'the first span was overwritten')
  t.equal(ring.trace(ids[999]).length, 1, 'the last one is there')
  now = Date.now() + 120_000
  t.same(ring.trace(ids[999]), [], 'past the age limit it is not returned')
})

t.test('the ring gives back each span as it ended: IDs, parent, status, attributes', async (t) => {
  const ring = new SpanRing({ size: 4, maxAgeMs: 60_000 })
  const tracer = new MeshTracer('agent-x', new AlwaysOnSampler(), (s) => { ring.add(s) })
  const parent = trace.setSpanContext(ROOT_CONTEXT, { traceId: 'c'.repeat(32), spanId: 'd'.repeat(16), traceFlags: 1, isRemote: true })
  const many = Object.fromEntries(Array.from({ length: 12 }, (_, i) => [`k${i}`, i]))
  const kept = [
    tracer.startSpan('a', { kind: 2, attributes: { s: 'text', n: 7, f: 0.5, b: true, list: ['x', 'y'] } }, parent),
    tracer.startSpan('b', { attributes: many }),
  ]
  kept[0].setAttribute('late', 'set after start')
  kept[0].setStatus({ code: 2, message: 'it broke' })
  for (const s of kept) s.end()
  kept[0].setAttribute('after', 'end') // ignored: the span has ended
  const [a] = ring.trace('c'.repeat(32))
  t.match(a, { traceId: 'c'.repeat(32), spanId: kept[0].spanContext().spanId, parentSpanId: 'd'.repeat(16), name: 'a', kind: 2, agent: 'agent-x', status: 2, statusMessage: 'it broke' })
  t.same(a.attributes, { s: 'text', n: 7, f: 0.5, b: true, list: ['x', 'y'], late: 'set after start' })
  const [b] = ring.trace(kept[1].spanContext().traceId)
  t.same(b.attributes, many, 'a dozen attributes, all of them')
  t.equal(b.parentSpanId, undefined)
  for (let i = 0; i < 4; i++) tracer.startSpan(`c${i}`, { attributes: { i } }).end()
  t.same(ring.trace('c'.repeat(32)), [], 'overwritten')
})

t.test('sampling from OTEL_TRACES_SAMPLER: a ratio of 0 records no new trace, but follows a sampled parent', async (t) => {
  const tracing = new Tracing({ agent: 'x', size: 16, maxAgeMs: 60_000, env: { OTEL_TRACES_SAMPLER: 'parentbased_traceidratio', OTEL_TRACES_SAMPLER_ARG: '0' } })
  t.teardown(async () => { await tracing.stop() })
  const root = tracing.tracer.startSpan('root')
  t.notOk(root.isRecording(), 'a new trace is not sampled')
  root.end()
  const parent = trace.setSpanContext(ROOT_CONTEXT, { traceId: 'c'.repeat(32), spanId: 'd'.repeat(16), traceFlags: 1, isRemote: true })
  const child = tracing.tracer.startSpan('child', {}, parent)
  t.ok(child.isRecording(), 'a span under a sampled parent is recorded')
  child.end()
  t.equal(tracing.ring?.recorded, 1, 'and kept')
  t.throws(() => samplerFromEnv({ OTEL_TRACES_SAMPLER: 'jaeger_remote' }), { code: 'MESH_ERR_CONFIG_INVALID' })
  t.throws(() => samplerFromEnv({ OTEL_TRACES_SAMPLER: 'traceidratio', OTEL_TRACES_SAMPLER_ARG: '2' }), { code: 'MESH_ERR_CONFIG_INVALID' })
})
