// Simulation benchmarks with the real stack in one process (test/sim): convergence of a new
// capability, failure detection, idle bandwidth, CPU and memory per node, against N.
// Usage: node bench/sim.ts [--sizes 10,50,100,200] [--idle 10]
import { mkdir, writeFile } from 'node:fs/promises'
import { parseArgs } from 'node:util'
import os from 'node:os'
import { Simulation } from '../test/sim/harness.ts'
import { converge, spreadNew } from '../test/sim/scenarios.ts'

const { values } = parseArgs({ options: { sizes: { type: 'string', default: '10,50,100,200' }, idle: { type: 'string', default: '10' } } })
const sizes = values.sizes.split(',').map(Number)
const IDLE_S = Number(values.idle)

interface Row {
  n: number
  convergeMs: number
  spread99Ms: number
  spread100Ms: number
  detectMs: number
  idleBytesPerNodePerS: { probe: number, sync: number, gossip: number }
  idleCpuMsPerNodePerS: number
  rssMbPerNode: number
  heapMbPerNode: number
  /** Over the whole run: healthy members declared dead, and suspected (each observer counts). */
  wrongfulDeaths: number
  wrongfulSuspicions: number
}
const rows: Row[] = []
const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]

for (const n of sizes) {
  global.gc?.()
  const rss0 = process.memoryUsage().rss
  const heap0 = process.memoryUsage().heapUsed
  const sim = new Simulation({ seed: n })
  try {
    const { convergeMs } = await converge(sim, n)
    await new Promise((resolve) => setTimeout(resolve, 2_000))
    global.gc?.()
    const mem = process.memoryUsage()
    // Idle: nothing changes; what remains is probing, anti-entropy and gossipsub's own upkeep.
    const bytes = (): { probe: number, sync: number, gossip: number } => {
      let probe = 0; let sync = 0; let gossip = 0
      for (const m of sim.up()) {
        const s = m.node.stats
        probe += s.probeBytes.in + s.probeBytes.out
        sync += s.syncBytes.in + s.syncBytes.out
        gossip += s.gossipBytes.in + s.gossipBytes.out
      }
      return { probe, sync, gossip }
    }
    const b0 = bytes()
    const cpu0 = process.cpuUsage()
    const t0 = performance.now()
    await new Promise((resolve) => setTimeout(resolve, IDLE_S * 1000))
    const secs = (performance.now() - t0) / 1000
    const cpu = process.cpuUsage(cpu0)
    const b1 = bytes()
    const members = sim.up().length
    // Counted at both ends, so halve: bytes each node sends and receives per second.
    const per = (k: 'probe' | 'sync' | 'gossip'): number => (b1[k] - b0[k]) / 2 / members / secs
    const spreads = []
    for (let i = 0; i < 3; i++) spreads.push(await spreadNew(sim))
    const agents = sim.up('agent')
    const victim = agents[Math.floor(sim.rng() * agents.length)]
    const k0 = performance.now()
    await sim.crash(victim.name)
    await sim.until(`every replica to drop ${victim.name}`, () => sim.listing(victim.node.peerId) === 0, 120_000, 10)
    const detectMs = performance.now() - k0
    rows.push({
      n,
      convergeMs,
      spread99Ms: median(spreads.map((s) => s.p99Ms)),
      spread100Ms: median(spreads.map((s) => s.p100Ms)),
      detectMs,
      idleBytesPerNodePerS: { probe: per('probe'), sync: per('sync'), gossip: per('gossip') },
      idleCpuMsPerNodePerS: ((cpu.user + cpu.system) / 1000) / members / secs,
      rssMbPerNode: (mem.rss - rss0) / 1e6 / members,
      heapMbPerNode: (mem.heapUsed - heap0) / 1e6 / members,
      wrongfulDeaths: sim.wrongfulDeaths().length,
      wrongfulSuspicions: sim.wrongfulSuspicions().length,
    })
    console.log(JSON.stringify(rows[rows.length - 1]))
  } finally {
    await sim.stop()
  }
}

const f = (x: number, d = 0): string => x.toFixed(d)
console.log(`\nreal stack in one process (@libp2p/memory, plaintext), default timing; ${os.cpus().length} cores, Node ${process.versions.node}`)
console.log('| nodes | converge after start ms | new capability 99 % ms | 100 % ms | crash dropped everywhere ms | idle bytes/s per node (probe + sync + gossip payload) | idle CPU ms/s per node | RSS MB per node | heap MB per node | healthy declared dead (suspected) |')
console.log('|---|---|---|---|---|---|---|---|---|---|')
for (const r of rows) {
  const b = r.idleBytesPerNodePerS
  console.log(`| ${r.n} | ${f(r.convergeMs)} | ${f(r.spread99Ms)} | ${f(r.spread100Ms)} | ${f(r.detectMs)} | ${f(b.probe + b.sync + b.gossip)} (${f(b.probe)} + ${f(b.sync)} + ${f(b.gossip)}) | ${f(r.idleCpuMsPerNodePerS, 2)} | ${f(r.rssMbPerNode, 2)} | ${f(r.heapMbPerNode, 2)} | ${r.wrongfulDeaths} (${r.wrongfulSuspicions}) |`)
}
await mkdir(new URL('./results/', import.meta.url), { recursive: true })
await writeFile(new URL('./results/sim.json', import.meta.url), JSON.stringify({ at: new Date().toISOString(), node: process.versions.node, cores: os.cpus().length, idleSeconds: IDLE_S, rows }, null, 2))
process.exit(0)
