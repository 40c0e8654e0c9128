// What the traffic policies cost a call (issue 11's "under 20 µs at p50 over the bare call path"),
// measured paired: in one caller process, a call through the lean client (the bare call path) and
// an injected dependency call (resolution, balancing, breakers, deadline, retries and failover
// bookkeeping, metrics, and the caller's spans when tracing is on) go to the same mesh server
// process in alternating sequential batches. Each round gives both a p50; the result is the median
// of the rounds' differences, which a shared machine's drift between rounds does not reach (two
// medians from separate runs, as `bench/calls.ts` gives them, moved by tens of µs here).
// Tracing on (the default: every call sampled) and off (`MCP_MESH_TRACING=off`, both ends), each
// in its own process.
// Usage: node bench/policies.ts [--rounds 20] [--calls 1000]
import { fork } from 'node:child_process'
import { parseArgs } from 'node:util'

const { values } = parseArgs({ options: { rounds: { type: 'string', default: '20' }, calls: { type: 'string', default: '1000' }, child: { type: 'string' } } })
const ROUNDS = Number(values.rounds)
const CALLS = Number(values.calls)
const ARGS = { text: 'Lisbon, 2026-12-01 to 2026-12-05: what is the weather like?' }

/** One mode's rounds, µs: each side's p50 and client CPU per call. */
interface Rounds { lean: number[], injected: number[], leanCpu: number[], injectedCpu: number[] }

if (values.child !== undefined) {
  const { z } = await import('zod')
  const { McpHttpClient } = await import('../src/proxy/mcp-client.ts')
  const { createMeshNode } = await import('../src/node.ts')
  process.emitWarning = () => {} // plain HTTP's warning, once per node
  const mesh = `bench-policies-${process.pid}`
  const server = fork(new URL('./fixtures/call-server.ts', import.meta.url), ['mesh', mesh], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] })
  const ready = await new Promise<{ url: string, addrs: string[] }>((resolve) => server.once('message', resolve as never))
  const lean = new McpHttpClient({ clientName: 'bench' })
  const node = createMeshNode({ mesh, name: 'bench-caller', ephemeralKey: true, colocated: true, handleSignals: false, bootstrap: ready.addrs, settleMs: 10_000, tls: { mode: 'off' } })
  await node.start()
  await node.ready()
  const echo = node.dependency<{ text: string }>({ capability: 'echo', output: z.object({ text: z.string() }) })
  const sides = { lean: async () => await lean.callTool(ready.url, 'echo', ARGS, {}), injected: async () => await echo(ARGS) }
  for (const call of Object.values(sides)) for (let i = 0; i < 500; i++) await call()
  const out: Rounds = { lean: [], injected: [], leanCpu: [], injectedCpu: [] }
  for (let r = 0; r < ROUNDS; r++) {
    for (const side of r % 2 === 0 ? ['lean', 'injected'] as const : ['injected', 'lean'] as const) {
      const t: number[] = []
      const cpu0 = process.cpuUsage()
      for (let i = 0; i < CALLS; i++) {
        const t0 = performance.now()
        await sides[side]()
        t.push(performance.now() - t0)
      }
      const cpu = process.cpuUsage(cpu0)
      t.sort((a, b) => a - b)
      out[side].push(t[t.length >> 1] * 1000)
      out[side === 'lean' ? 'leanCpu' : 'injectedCpu'].push((cpu.user + cpu.system) / CALLS)
    }
  }
  await node.stop()
  await lean.close()
  server.kill()
  process.send!(out)
  process.exit(0)
}

const run = async (env: Record<string, string>): Promise<Rounds> => {
  const c = fork(new URL(import.meta.url), ['--child', 'run', '--rounds', String(ROUNDS), '--calls', String(CALLS)], { env: { ...process.env, ...env }, stdio: ['ignore', 'inherit', 'inherit', 'ipc'] })
  return await new Promise((resolve, reject) => {
    c.once('message', (m) => { resolve(m as Rounds) })
    c.once('exit', (code) => { if (code !== 0) reject(new Error(`the child exited with ${code}`)) })
  })
}
const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[xs.length >> 1]
const diff = (a: number[], b: number[]): number[] => a.map((x, i) => x - b[i])
console.log(`sequential calls, ${CALLS} per side and round, ${ROUNDS} rounds alternating, Node ${process.version} (µs)`)
console.log('| tracing | lean client p50 | injected p50 | injected over lean, p50: median of the rounds\' differences (middle half) | client CPU per call over lean: median |')
console.log('|---|---|---|---|---|')
for (const [mode, env] of [['on (sampled, the default)', {}], ['off', { MCP_MESH_TRACING: 'off' }]] as const) {
  const r = await run(env)
  const d = diff(r.injected, r.lean).sort((a, b) => a - b)
  const q = (p: number): string => d[Math.floor(p * (d.length - 1))].toFixed(1)
  console.log(`| ${mode} | ${median(r.lean).toFixed(0)} | ${median(r.injected).toFixed(0)} | **+${median(d).toFixed(1)}** (${q(0.25)} to ${q(0.75)}) | +${median(diff(r.injectedCpu, r.leanCpu)).toFixed(1)} |`)
}
