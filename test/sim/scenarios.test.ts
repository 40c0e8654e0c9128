// The simulation scenarios at CI size: they assert outcomes (every replica converges, every dead
// node is dropped, no healthy node is declared dead at any time in the run). Time limits only
// bound the waiting; the numbers themselves are the benchmarks' job (bench/sim.ts).
import t from 'tap'
import { Simulation } from './harness.ts'
import type { LivenessEvent, Scenario, SimOptions } from './harness.ts'
import { blackoutRefuted, bootstrapKilled, churn, crashDetected, joinAndSpread, lossy, partitionHeals } from './scenarios.ts'

type TapTest = Parameters<Parameters<typeof t.test>[0]>[0]
const N = Number(process.env.SIM_NODES ?? 40)
t.setTimeout(900_000)

/** Runs a scenario; returns what it measured and every false death of the whole run. */
async function run (sc: Scenario, n = N, options: SimOptions = { seed: 42 }) {
  const sim = new Simulation(options)
  try {
    const m = await sc.run(sim, n)
    return { m, deaths: sim.wrongfulDeaths() }
  } finally {
    await sim.stop()
  }
}

/** Over the whole run, not only at the end: a false death later refuted counts (the list shows who, whom and when). */
function noFalseDeaths (t: TapTest, r: { m: Record<string, number>, deaths: LivenessEvent[] }): void {
  t.same(r.deaths, [], 'no healthy node declared dead at any time in the run')
  t.comment(`healthy nodes wrongly suspected: ${r.m.wrongfulSuspicions} times (each observer counts)`)
}

t.test(`${N} nodes join and converge; a new capability reaches every replica`, async (t) => {
  const r = await run(joinAndSpread)
  noFalseDeaths(t, r)
  t.comment(`converged ${Math.round(r.m.convergeMs)} ms after the last start; new capability at 99 % in ${Math.round(r.m.spread99Ms)} ms, 100 % in ${Math.round(r.m.spread100Ms)} ms`)
})

t.test('a crashed node is dropped by every replica, and nobody else', async (t) => {
  const r = await run(crashDetected)
  noFalseDeaths(t, r)
  t.comment(`dropped everywhere in ${Math.round(r.m.detectMs)} ms`)
})

t.test('a partition of the mesh in two halves heals', async (t) => {
  const r = await run(partitionHeals(5_000))
  // Each side declares the other dead: right, since they are cut off; nobody on its own side.
  noFalseDeaths(t, r)
  t.comment(`each side dropped the other in ${Math.round(r.m.splitMs)} ms; reconverged ${Math.round(r.m.healMs)} ms after the heal`)
})

t.test('with the bootstrap dead, a new node joins through an agent and reaches every replica', async (t) => {
  noFalseDeaths(t, await run(bootstrapKilled))
})

t.test('5 % message loss: a new capability still reaches everyone; nobody is declared dead', async (t) => {
  noFalseDeaths(t, await run(lossy(0.05)))
})

t.test('churn: crashes and joins; the mesh converges to exactly the live members', async (t) => {
  noFalseDeaths(t, await run(churn(5)))
})

t.test('the false-death count sees a death that was refuted: a healthy node in a probe blackout', async (t) => {
  // Without it, the assertions above could not fail once a false death has been refuted.
  const r = await run(blackoutRefuted(8_000), 20)
  t.ok(r.m.victimDeaths > 0, `the node in the blackout was declared dead ${r.m.victimDeaths} times`)
  // The victim's own verdicts while blind are not wrongful (the harness counts it cut off, as in a partition).
  const bySubject = Map.groupBy(r.deaths, (e) => e.subject)
  const victim = [...bySubject.keys()].find((s) => bySubject.get(s)!.length === r.m.victimDeaths)
  const others = r.deaths.filter((e) => e.subject !== victim).map((e) => `${e.observer} declared ${e.subject} dead at ${Math.round(e.at)} ms`)
  t.same(others, [], 'and nobody else was')
  t.equal(r.m.listing, r.m.members - 1, 'yet at the end every other member lists it alive again')
})

t.test('virtual time: the same code on a clock that advances only when the process is idle', async (t) => {
  const sim = new Simulation({ seed: 9, virtualTime: true })
  try {
    const m = await crashDetected.run(sim, 30)
    t.same(sim.wrongfulDeaths(), [], 'no healthy node declared dead at any time in the run')
    // Protocol time, free of CPU queueing: at least the suspicion minimum, within its maximum.
    t.ok(m.detectMs >= 1_000 && m.detectMs <= 8_000, `crash detected in ${Math.round(m.detectMs)} virtual ms`)
  } finally {
    await sim.stop()
  }
})
