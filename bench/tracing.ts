// What tracing costs a call, and what the span ring costs in memory. Three modes: `off`
// (tracing.enabled false), `unsampled` (OTEL_TRACES_SAMPLER=always_off: context still travels,
// nothing is recorded) and `sampled` (the default: every span recorded in the ring). Each mode is
// a caller and a provider on plain HTTP (so tracing's share is the largest it can be: mutual TLS
// makes the call dearer), making sequential calls.
//
// By default each round is one process holding all three pairs, called in alternating batches
// (off, unsampled, sampled, then the reverse order): the modes share the process's GC and JIT
// state, which otherwise differs between processes by more than tracing costs (a process lands at
// random in a slower GC state: BENCHMARKS.md, "Tracing"). The pairs are made in a rotating order
// (a round in three makes each mode's first), since pairs made later run slower. `--separate` forks one process per mode
// and round instead, as earlier measurements did. Then the ring at its default size (4,096
// spans) is filled with spans shaped like an attempt's, and its heap measured.
// Usage: node --expose-gc bench/tracing.ts [--rounds 6] [--calls 3000] [--batch 200] [--separate]
import { fork } from 'node:child_process'
import { parseArgs } from 'node:util'

const { values } = parseArgs({ options: { calls: { type: 'string', default: '3000' }, rounds: { type: 'string', default: '6' }, batch: { type: 'string', default: '200' }, separate: { type: 'boolean', default: false }, child: { type: 'string' } } })
const CALLS = Number(values.calls)
const BATCH = Number(values.batch)
const MODES = { off: { MCP_MESH_TRACING: 'off' }, unsampled: { OTEL_TRACES_SAMPLER: 'always_off' }, sampled: { OTEL_TRACES_SAMPLER: 'parentbased_always_on' } } as const
type Mode = keyof typeof MODES
const ALL = Object.keys(MODES) as Mode[]
/** One mode in one process: p50 of its calls and the process's CPU per call while they ran, µs. */
interface Round { p50: number, cpu: number }
const ARGS = { text: 'Lisbon, 2026-12-01 to 2026-12-05: what is the weather like?' }

if (values.child !== undefined) {
  const { createMeshNode } = await import('../src/node.ts')
  process.emitWarning = () => {}
  // Pairs made later run a few % slower than the first, whatever their mode (two untraced pairs
  // measured against each other: up to +6.5 %): each round makes them in another order.
  const rotate = Number(process.env.BENCH_TRACING_ROTATE ?? 0) % ALL.length
  const modes = values.child === 'all' ? [...ALL.slice(rotate), ...ALL.slice(0, rotate)] : [values.child as Mode]
  const calls: Partial<Record<Mode, (a: typeof ARGS) => Promise<unknown>>> = {}
  const stops: Array<() => Promise<void>> = []
  for (const mode of modes) {
    // A node reads the sampler when it is created, so each pair gets its mode's environment.
    Object.assign(process.env, MODES[mode])
    const opts = (name: string, extra: object = {}): Parameters<typeof createMeshNode>[0] => ({ mesh: `bench-tracing-${process.pid}-${mode}`, name, ephemeralKey: true, colocated: true, handleSignals: false, settleMs: 5_000, tls: { mode: 'off' }, tracing: { enabled: mode !== 'off' }, ...extra })
    const provider = createMeshNode(opts('provider'))
    provider.tool('echo', { annotations: { readOnlyHint: true } }, async (args) => ({ echo: args }))
    await provider.start()
    const caller = createMeshNode(opts('caller', { bootstrap: provider.gossip.addrs }))
    await caller.start()
    await caller.ready()
    calls[mode] = caller.dependency('echo')
    stops.push(async () => { await caller.stop(); await provider.stop() })
  }
  for (const mode of modes) for (let i = 0; i < 500; i++) await calls[mode]!(ARGS)
  const times: Partial<Record<Mode, number[]>> = {}
  const cpu: Partial<Record<Mode, number>> = {}
  const batch = modes.length === 1 ? CALLS : BATCH
  for (let done = 0, turn = 0; done < CALLS; done += batch, turn++) {
    for (const mode of turn % 2 === 0 ? modes : [...modes].reverse()) {
      const t = (times[mode] ??= [])
      const cpu0 = process.cpuUsage()
      for (let i = 0; i < Math.min(batch, CALLS - done); i++) {
        const t0 = performance.now()
        await calls[mode]!(ARGS)
        t.push(performance.now() - t0)
      }
      const c = process.cpuUsage(cpu0)
      cpu[mode] = (cpu[mode] ?? 0) + c.user + c.system
    }
  }
  const out: Partial<Record<Mode, Round>> = {}
  for (const mode of modes) {
    const t = times[mode]!.sort((a, b) => a - b)
    out[mode] = { p50: t[Math.floor(t.length / 2)] * 1000, cpu: cpu[mode]! / t.length }
  }
  for (const stop of stops) await stop()
  process.send!(out)
  process.exit(0)
}

const run = async (child: string, env: object): Promise<Partial<Record<Mode, Round>>> => {
  const c = fork(new URL(import.meta.url), ['--child', child, '--calls', String(CALLS), '--batch', String(BATCH)], { env: { ...process.env, ...env }, stdio: ['ignore', 'inherit', 'inherit', 'ipc'] })
  return await new Promise((resolve, reject) => { c.once('message', (m) => resolve(m as Partial<Record<Mode, Round>>)); c.once('exit', (code) => { if (code !== 0) reject(new Error(`${child} exited ${code}`)) }) })
}
const rounds: Array<Record<Mode, Round>> = []
for (let r = 0; r < Number(values.rounds); r++) {
  if (values.separate) {
    const round: Partial<Record<Mode, Round>> = {}
    for (const mode of ALL) Object.assign(round, await run(mode, MODES[mode]))
    rounds.push(round as Record<Mode, Round>)
  } else rounds.push(await run('all', { BENCH_TRACING_ROTATE: String(r) }) as Record<Mode, Round>)
}
const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]
const pct = (x: number): string => `${x >= 0 ? '+' : ''}${(x * 100).toFixed(1)} %`
console.log(`sequential calls, ${CALLS} per mode and round, ${values.rounds} rounds, ${values.separate ? 'a process per mode and round' : `one process per round, modes in alternating batches of ${BATCH}`} (µs)`)
console.log('| mode | p50, median round | p50 over off: median (worst round) | CPU per call, median | CPU over off: median (worst) | rounds (p50 / CPU) |')
console.log('|---|---|---|---|---|---|')
for (const mode of ALL) {
  // Each round's own ratio: within a round the modes shared the process (by default).
  const over = rounds.map((r) => r[mode].p50 / r.off.p50 - 1)
  const overCpu = rounds.map((r) => r[mode].cpu / r.off.cpu - 1)
  const cells = mode === 'off' ? ['', ''] : [`${pct(median(over))} (${pct(Math.max(...over))})`, `${pct(median(overCpu))} (${pct(Math.max(...overCpu))})`]
  console.log(`| ${mode} | ${median(rounds.map((r) => r[mode].p50)).toFixed(0)} | ${cells[0]} | ${median(rounds.map((r) => r[mode].cpu)).toFixed(0)} | ${cells[1]} | ${rounds.map((r) => `${r[mode].p50.toFixed(0)} / ${r[mode].cpu.toFixed(0)}`).join(', ')} |`)
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
