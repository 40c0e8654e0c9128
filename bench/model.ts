// The model simulation against N (test/sim/model): the mesh's own gossip node code on a virtual
// message layer, with per-hop CPU costs measured on the real stack (bench/calibrate.ts).
// 1. Calibration: the measurements of bench/sim.ts on a converged, idle mesh (spread a new
//    capability three times, crash one) on the model with one CPU shared by every node and no link
//    delay, which is what the one-process harness is; compared with the harness's numbers. The
//    model's mesh is seeded as converged: joining N nodes at once saturates one shared CPU, in the
//    harness (13 s at 100) as in the model, and the model then tips into a storm of indirect-probe
//    dials (see BENCHMARKS.md); the harness's join time is not compared.
// 2. Deployment: every node with its own CPU, 0.25 ms one-way links (+0.1 ms jitter), Noise
//    connection costs; meshes seeded as converged at 100, 1,000 and 10,000 nodes: a new capability
//    at 99 % and 100 % of nodes, a crash dropped everywhere, bandwidth per node idle and under churn.
// 3. WAN (the `wan` profile: 50 ms one way + up to 20 ms jitter, 1 % of TCP segments lost and
//    retransmitted, 5 % of nodes slow), with the shipped timing (or `--wan-timing` to try
//    others) at `--wan` sizes: a new capability at 99 % and 100 %, crashes and hangs dropped
//    everywhere, idle bandwidth, and every false suspicion and death over the whole run, with the
//    probe trace (why probes failed).
// Every row counts false verdicts over its whole run: healthy members declared dead, and suspected.
// Usage: node --max-old-space-size=20000 bench/model.ts [--sizes 100,1000,10000] [--calibrate 100,200] [--idle 3]
//          [--wan 1000,10000] [--wan-timing '{"probeTimeoutMs":1300}']
import { mkdir, readFile, writeFile } from 'node:fs/promises'
import { parseArgs } from 'node:util'
import os from 'node:os'
import { Simulation } from '../test/sim/harness.ts'
import type { SimMember } from '../test/sim/harness.ts'
import { falseAlarms, pickAgent, spreadNew } from '../test/sim/scenarios.ts'
import { MODEL_PROFILES } from '../test/sim/model/network.ts'
import type { ModelCosts, ModelOptions } from '../test/sim/model/network.ts'
import { summarize } from '../test/sim/model/probe-trace.ts'
import type { GossipOptionsInput } from '../src/config.ts'
import type { ProbeSummary } from '../test/sim/model/probe-trace.ts'

const { values } = parseArgs({ options: { sizes: { type: 'string', default: '100,1000,10000' }, calibrate: { type: 'string', default: '100,200' }, idle: { type: 'string', default: '3' }, wan: { type: 'string', default: '1000,10000' }, 'wan-timing': { type: 'string' } } })
const list = (v: string): number[] => v.split(',').filter(Boolean).map(Number)
const SIZES = list(values.sizes)
const CALIBRATE = list(values.calibrate)
const WAN = list(values.wan)
/** The WAN runs' timing: the shipped defaults, or `--wan-timing` (JSON of `timing` options) to try others. */
const wanTiming: GossipOptionsInput['timing'] | undefined = values['wan-timing'] === undefined ? undefined : JSON.parse(values['wan-timing'])
const IDLE_S = Number(values.idle)
const results = new URL('./results/', import.meta.url)
const readJson = async (name: string): Promise<any> => JSON.parse(await readFile(new URL(name, results), 'utf8').catch(() => 'null'))

// Measured by bench/calibrate.ts on this machine (defaults: its last run, in BENCHMARKS.md).
const calibration = await readJson('calibration.json')
const measured: ModelCosts = calibration?.costs ?? { messageMs: 0.95, duplicateMs: 0, frameMs: 0.22, connectMs: 3.9 }
const noiseConnectMs: number = calibration?.detail?.connectNoiseMs ?? 11.2
const harness = await readJson('sim.json')
const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]
const mb = (): number => process.memoryUsage().rss / 1e6

async function detect (sim: Simulation, victim: SimMember): Promise<number> {
  await sim.crash(victim.name)
  return sim.until(`every replica to drop ${victim.name}`, () => sim.listing(victim.node.peerId) === 0, 60_000, 10)
}

/**
 * Bytes per node per virtual second, each way (every byte is counted once sent and once received,
 * so the sum over nodes is halved, as bench/sim.ts does): on the wire (payload, framing, gossipsub's
 * duplicates) and payload alone (the nodes' own counters).
 */
async function traffic (sim: Simulation, ms: number, during?: () => Promise<void>): Promise<{ wire: number, payload: number }> {
  const payload = (): number => sim.up().reduce((s, m) => {
    const x = m.node.stats
    return s + x.probeBytes.in + x.probeBytes.out + x.syncBytes.in + x.syncBytes.out + x.gossipBytes.in + x.gossipBytes.out
  }, 0)
  const w0 = sim.model!.wire()
  const p0 = payload()
  const t0 = sim.now()
  if (during !== undefined) await during()
  const rest = ms - (sim.now() - t0)
  if (rest > 0) await sim.sleep(rest)
  const secs = (sim.now() - t0) / 1000
  const w1 = sim.model!.wire()
  const n = sim.up().length
  return { wire: (w1.in + w1.out - w0.in - w0.out) / 2 / n / secs, payload: (payload() - p0) / 2 / n / secs }
}

interface Measured { spread99Ms: number, spread100Ms: number, detectMs: number }
interface CalibrationRow { n: number, model: Measured, harness?: Measured, realS: number }
const calibrationRows: CalibrationRow[] = []
for (const n of CALIBRATE) {
  const t0 = performance.now()
  const sim = new Simulation({ seed: n, network: 'model', model: { cpu: 'shared', latencyMs: 0, jitterMs: 0, costs: measured } })
  try {
    const agents = await sim.seedConverged(n, 5_000)
    const spreads = []
    for (let i = 0; i < 3; i++) spreads.push(await spreadNew(sim))
    const detectMs = await detect(sim, agents[Math.floor(sim.rng() * agents.length)])
    const h = harness?.rows?.find((r: { n: number }) => r.n === n)
    calibrationRows.push({
      n,
      model: { spread99Ms: median(spreads.map((s) => s.p99Ms)), spread100Ms: median(spreads.map((s) => s.p100Ms)), detectMs },
      ...(h === undefined ? {} : { harness: { spread99Ms: h.spread99Ms, spread100Ms: h.spread100Ms, detectMs: h.detectMs } }),
      realS: (performance.now() - t0) / 1000,
    })
    console.log(JSON.stringify(calibrationRows.at(-1)))
  } finally {
    await sim.stop()
  }
}

interface Row { n: number, seedS: number, spread99Ms: number, spread100Ms: number, detectMs: number, idle: { wire: number, payload: number }, churn: { wire: number, payload: number }, wrongfulDeaths: number, wrongfulSuspicions: number, realS: number, rssMb: number }
const rows: Row[] = []
const deployment: Partial<ModelOptions> = { cpu: 'per-node', latencyMs: 0.25, jitterMs: 0.1, costs: { ...measured, connectMs: noiseConnectMs } }
for (const n of SIZES) {
  global.gc?.()
  const t0 = performance.now()
  const sim = new Simulation({ seed: n + 1, network: 'model', model: deployment })
  try {
    const agents = await sim.seedConverged(n, 3_000)
    const seedS = (performance.now() - t0) / 1000
    console.log(`${n}: seeded in ${seedS.toFixed(0)} s, RSS ${mb().toFixed(0)} MB`)
    const idle = await traffic(sim, IDLE_S * 1000)
    const spreads = []
    for (let i = 0; i < 3; i++) spreads.push(await spreadNew(sim))
    const detectMs = await detect(sim, agents[Math.floor(sim.rng() * agents.length)])
    // Churn: one crash and one join every second.
    const churn = await traffic(sim, IDLE_S * 1000, async () => {
      for (let i = 0; i < IDLE_S; i++) {
        const up = sim.up('agent')
        await sim.crash(up[Math.floor(sim.rng() * up.length)].name)
        await sim.add(1)
        await sim.sleep(1_000)
      }
    })
    rows.push({ n, seedS, spread99Ms: median(spreads.map((s) => s.p99Ms)), spread100Ms: median(spreads.map((s) => s.p100Ms)), detectMs, idle, churn, ...falseAlarms(sim), realS: (performance.now() - t0) / 1000, rssMb: mb() })
    console.log(JSON.stringify(rows.at(-1)))
  } finally {
    await sim.stop()
  }
}

interface WanRow {
  n: number
  timing: 'shipped' | 'custom'
  seedS: number
  /** Virtual ms the run covered, seeding's settling included. */
  coveredMs: number
  idle: { wire: number, payload: number }
  spread99Ms?: number
  spread100Ms?: number
  /** Crashed (kill) and hung (SIGSTOP) agents, none of them slow: ms until every replica dropped each. */
  crashMs?: number[]
  hangMs?: number[]
  wrongfulDeaths: number
  wrongfulSuspicions: number
  /** Members wrongly declared dead at least once. */
  wronglyDeadMembers: number
  probes: ProbeSummary
  realS: number
  rssMb: number
}
const wanRows: WanRow[] = []
for (const n of WAN) {
  const timing: WanRow['timing'] = wanTiming === undefined ? 'shipped' : 'custom'
  global.gc?.()
  const t0 = performance.now()
  const sim = new Simulation({ seed: n + 2, profile: 'wan', model: { cpu: 'per-node', costs: { ...measured, connectMs: noiseConnectMs } }, trace: true, ...(wanTiming === undefined ? {} : { timing: wanTiming }) })
  try {
    const start = sim.now()
    await sim.seedConverged(n, 3_000)
    const seedS = (performance.now() - t0) / 1000
    console.log(`WAN ${n}, ${timing} timing: seeded in ${seedS.toFixed(0)} s, RSS ${mb().toFixed(0)} MB; false deaths so far ${sim.wrongfulDeaths().length}`)
    const idle = await traffic(sim, IDLE_S * 1000)
    let more: Partial<WanRow> = {}
    {
      const spreads = []
      for (let i = 0; i < 3; i++) spreads.push(await spreadNew(sim))
      const crashMs = []
      for (let i = 0; i < 3; i++) crashMs.push(await detect(sim, pickAgent(sim)))
      const hangMs = []
      for (let i = 0; i < 3; i++) {
        const victim = pickAgent(sim)
        sim.hang(victim.name)
        hangMs.push(await sim.until(`every replica to drop ${victim.name}`, () => sim.listing(victim.node.peerId) === 0, 60_000, 10))
      }
      more = { spread99Ms: median(spreads.map((s) => s.p99Ms)), spread100Ms: median(spreads.map((s) => s.p100Ms)), crashMs, hangMs }
    }
    const deaths = sim.wrongfulDeaths()
    wanRows.push({ n, timing, seedS, coveredMs: sim.now() - start, idle, ...more, ...falseAlarms(sim), wronglyDeadMembers: new Set(deaths.map((e) => e.subject)).size, probes: summarize(sim.trace!.report), realS: (performance.now() - t0) / 1000, rssMb: mb() })
    console.log(JSON.stringify(wanRows.at(-1)))
  } finally {
    await sim.stop()
  }
}

const f = (x: number | undefined, d = 0): string => x === undefined ? '-' : x.toFixed(d)
const c = measured
console.log(`\nmodel simulation; per-hop CPU measured on the real stack: message ${f(c.messageMs, 3)} ms, frame ${f(c.frameMs, 3)} ms, connection ${f(c.connectMs, 2)} ms (plaintext) / ${f(noiseConnectMs, 2)} ms (Noise); ${os.cpus().length} cores, Node ${process.versions.node}`)
console.log('\ncalibration: one shared CPU, no link delay (what the one-process harness is); harness numbers from bench/results/sim.json')
console.log('| nodes | new capability 99 % ms (model / harness) | 100 % ms | crash dropped everywhere ms |')
console.log('|---|---|---|---|')
for (const r of calibrationRows) {
  const h = r.harness
  console.log(`| ${r.n} | ${f(r.model.spread99Ms)} / ${f(h?.spread99Ms)} | ${f(r.model.spread100Ms)} / ${f(h?.spread100Ms)} | ${f(r.model.detectMs)} / ${f(h?.detectMs)} |`)
}
console.log('\ndeployment: a CPU per node, 0.25 ms links (+0.1 ms jitter), Noise connections; meshes seeded as converged')
console.log('| nodes | new capability 99 % ms | 100 % ms | crash dropped everywhere ms | idle bytes/s per node, each way: wire (payload) | churn, 1 crash + 1 join per s: wire (payload) | healthy declared dead (suspected), whole run | run s | RSS MB |')
console.log('|---|---|---|---|---|---|---|---|---|')
for (const r of rows) {
  console.log(`| ${r.n} | ${f(r.spread99Ms)} | ${f(r.spread100Ms)} | ${f(r.detectMs)} | ${f(r.idle.wire)} (${f(r.idle.payload)}) | ${f(r.churn.wire)} (${f(r.churn.payload)}) | ${r.wrongfulDeaths} (${r.wrongfulSuspicions}) | ${f(r.realS)} | ${f(r.rssMb)} |`)
}
const ms = (xs: number[] | undefined): string => xs === undefined ? '-' : xs.map((x) => f(x)).join(', ')
const pct = (x: number): string => `${(100 * x).toFixed(2)} %`
console.log(`\nWAN: ${JSON.stringify(MODEL_PROFILES.wan)}; a CPU per node, Noise connections; meshes seeded as converged; timing: ${wanTiming === undefined ? 'shipped' : JSON.stringify(wanTiming)}`)
console.log('| nodes | timing | virtual s | new capability 99 % ms | 100 % ms | crashes dropped everywhere ms | hangs ms | idle bytes/s per node: wire (payload) | false deaths (members) | false suspicions | run s | RSS MB |')
console.log('|---|---|---|---|---|---|---|---|---|---|---|---|')
for (const r of wanRows) {
  console.log(`| ${r.n} | ${r.timing} | ${f(r.coveredMs / 1000, 1)} | ${f(r.spread99Ms)} | ${f(r.spread100Ms)} | ${ms(r.crashMs)} | ${ms(r.hangMs)} | ${f(r.idle.wire)} (${f(r.idle.payload)}) | ${r.wrongfulDeaths} (${r.wronglyDeadMembers}) | ${r.wrongfulSuspicions} | ${f(r.realS)} | ${f(r.rssMb)} |`)
}
console.log('\nWAN probes: why direct probes failed, what helpers answered, what own suspicions of healthy members came from')
console.log('| nodes | timing | own probes | failed: before a sample / after | between normal nodes: before / after | to or from slow nodes | retransmission involved | late acks ms: p50, p90, max | indirect rounds; helpers: ack / nack / none; dialled (then nack) | own suspicions of healthy members, by cause |')
console.log('|---|---|---|---|---|---|---|---|---|---|')
for (const r of wanRows) {
  const p = r.probes
  const i = p.indirect
  const causes = Object.entries(p.voices.causes).filter(([, v]) => v > 0).map(([k, v]) => `${k} ${v}`).join(', ')
  console.log(`| ${r.n} | ${r.timing} | ${p.ownProbes} | ${pct(p.failedRate.noSample)} / ${pct(p.failedRate.withSample)} | ${pct(p.normalFailedRate.noSample)} / ${pct(p.normalFailedRate.withSample)} | ${p.failedSlow} | ${p.failedRetransmitted} | ${p.lateAckMs.join(', ')} | ${i.rounds}; ${i.ack} / ${i.nack} / ${i.none}; ${i.dialled} (${i.dialledNack}) | ${p.voices.healthy}: ${causes || '-'} |`)
}
await mkdir(results, { recursive: true })
await writeFile(new URL('model.json', results), JSON.stringify({ at: new Date().toISOString(), node: process.versions.node, cores: os.cpus().length, costs: measured, noiseConnectMs, deployment, calibration: calibrationRows, rows, wan: { profile: MODEL_PROFILES.wan, timing: wanTiming ?? 'shipped', rows: wanRows } }, null, 2))
process.exit(0)
