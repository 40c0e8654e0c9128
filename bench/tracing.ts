// What tracing costs a call, and what the span ring costs in memory. Each round forks one process
// per mode, interleaved: `off` (tracing.enabled false), `unsampled` (OTEL_TRACES_SAMPLER=always_off:
// spans are created but not recorded, context still travels) and `sampled` (the default: every
// span recorded in the ring). In each, a caller and a provider (one process, plain HTTP, so the
// ratio is the worst case: mutual TLS makes the call dearer and tracing's share smaller) make
// sequential calls; p50 and CPU per call are compared with `off`. Then the ring at its default
// size (4,096 spans) is filled with spans shaped like an attempt's, and its heap measured.
// Usage: node --expose-gc bench/tracing.ts [--calls 3000] [--rounds 5]
import { fork } from 'node:child_process'
import { parseArgs } from 'node:util'

const { values } = parseArgs({ options: { calls: { type: 'string', default: '3000' }, rounds: { type: 'string', default: '5' }, child: { type: 'string' } } })
const CALLS = Number(values.calls)
const MODES = { off: { MCP_MESH_TRACING: 'off' }, unsampled: { OTEL_TRACES_SAMPLER: 'always_off' }, sampled: { OTEL_TRACES_SAMPLER: 'parentbased_always_on' } } as const
type Mode = keyof typeof MODES
interface Round { p50: number, cpu: number }

if (values.child !== undefined) {
  const { createMeshNode } = await import('../src/node.ts')
  const opts = (name: string, extra: object = {}): Parameters<typeof createMeshNode>[0] => ({ mesh: `bench-tracing-${process.pid}`, name, ephemeralKey: true, colocated: true, handleSignals: false, settleMs: 5_000, tls: { mode: 'off' }, ...extra })
  process.emitWarning = () => {}
  const provider = createMeshNode(opts('provider'))
  provider.tool('echo', { annotations: { readOnlyHint: true } }, async (args) => ({ echo: args }))
  await provider.start()
  const caller = createMeshNode(opts('caller', { bootstrap: provider.gossip.addrs }))
  await caller.start()
  await caller.ready()
  const echo = caller.dependency('echo')
  const args = { text: 'Lisbon, 2026-12-01 to 2026-12-05: what is the weather like?' }
  for (let i = 0; i < 500; i++) await echo(args)
  const times: number[] = []
  const cpu0 = process.cpuUsage()
  for (let i = 0; i < CALLS; i++) {
    const t0 = performance.now()
    await echo(args)
    times.push(performance.now() - t0)
  }
  const cpu = process.cpuUsage(cpu0)
  times.sort((a, b) => a - b)
  const round: Round = { p50: times[Math.floor(times.length / 2)] * 1000, cpu: (cpu.user + cpu.system) / CALLS }
  await caller.stop()
  await provider.stop()
  process.send!(round)
  process.exit(0)
}

const results: Record<Mode, Round[]> = { off: [], unsampled: [], sampled: [] }
for (let r = 0; r < Number(values.rounds); r++) {
  for (const mode of Object.keys(MODES) as Mode[]) {
    const child = fork(new URL(import.meta.url), ['--child', mode, '--calls', String(CALLS)], { env: { ...process.env, ...MODES[mode] }, stdio: ['ignore', 'inherit', 'inherit', 'ipc'] })
    results[mode].push(await new Promise<Round>((resolve, reject) => { child.once('message', (m) => resolve(m as Round)); child.once('exit', (code) => { if (code !== 0) reject(new Error(`${mode} exited ${code}`)) }) }))
  }
}
const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]
console.log(`sequential calls, ${CALLS} per round, ${values.rounds} rounds interleaved (µs; per round: p50 / CPU per call of the process holding caller and provider)`)
console.log('| mode | p50, median round | p50 over off | CPU per call, median | CPU over off | rounds (p50 / CPU) |')
console.log('|---|---|---|---|---|---|')
const off = { p50: median(results.off.map((x) => x.p50)), cpu: median(results.off.map((x) => x.cpu)) }
for (const mode of Object.keys(MODES) as Mode[]) {
  const p50 = median(results[mode].map((x) => x.p50))
  const cpu = median(results[mode].map((x) => x.cpu))
  const pct = (a: number, b: number): string => `${a >= b ? '+' : ''}${((a / b - 1) * 100).toFixed(1)} %`
  console.log(`| ${mode} | ${p50.toFixed(0)} | ${pct(p50, off.p50)} | ${cpu.toFixed(0)} | ${pct(cpu, off.cpu)} | ${results[mode].map((x) => `${x.p50.toFixed(0)} / ${x.cpu.toFixed(0)}`).join(', ')} |`)
}

// The ring at its default size, filled with spans shaped like an attempt's.
const gc = (globalThis as { gc?: () => void }).gc
if (gc === undefined) {
  console.log('ring memory: run with --expose-gc to measure it')
} else {
  const { SpanRing } = await import('../src/telemetry/span-ring.ts')
  const { MeshTracer } = await import('../src/telemetry/mesh-tracer.ts')
  const { AlwaysOnSampler } = await import('@opentelemetry/sdk-trace')
  const measure = (): number => { gc(); gc(); return process.memoryUsage().heapUsed }
  const attributes = (): Record<string, string | number> => ({ 'mcp.method.name': 'tools/call', 'gen_ai.tool.name': 'get_weather', 'mesh.attempt': 1, 'mesh.peer.agent': 'weather-basic', 'mesh.peer.id': '12D3KooWQYhTNQdmr3ArTeUHRYzFg94BKyTkoWBDWez9kSCVe2Xo', 'mesh.peer.spiffe_id': 'spiffe://mcp-mesh.local/agent/weather-basic', 'server.address': '127.0.0.1', 'server.port': 40123 })
  const fill = (tracer: InstanceType<typeof MeshTracer>, n: number): void => {
    for (let i = 0; i < n; i++) tracer.startSpan('tools/call get_weather', { attributes: attributes() }).end()
  }
  // First-use allocations (the ID pool, compiled code) are not the ring's.
  const warm = new SpanRing({ size: 16, maxAgeMs: 900_000 })
  fill(new MeshTracer('weather-basic', new AlwaysOnSampler(), (s) => { warm.add(s) }), 64)
  const before = measure()
  const ring = new SpanRing({ size: 4_096, maxAgeMs: 900_000 })
  const tracer = new MeshTracer('weather-basic', new AlwaysOnSampler(), (s) => { ring.add(s) })
  fill(tracer, 4_096)
  const full = measure()
  fill(tracer, 4_096 * 3) // overwriting: the ring does not grow
  const after = measure()
  console.log(`ring of 4,096 spans: ${((full - before) / 1024 / 1024).toFixed(2)} MB (${Math.round((full - before) / 4_096)} bytes per span); after 3 more rounds of overwriting: ${((after - before) / 1024 / 1024).toFixed(2)} MB`)
}
