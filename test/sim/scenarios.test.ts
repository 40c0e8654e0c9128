// The simulation scenarios at CI size: they assert outcomes (every replica converges, every dead
// node is dropped, no healthy node is declared dead). Time limits only bound the waiting; the
// numbers themselves are the benchmarks' job (bench/sim.ts).
import t from 'tap'
import { Simulation } from './harness.ts'
import type { Scenario } from './harness.ts'
import { bootstrapKilled, churn, crashDetected, joinAndSpread, lossy, partitionHeals } from './scenarios.ts'

const N = Number(process.env.SIM_NODES ?? 40)
t.setTimeout(900_000)

async function run (sc: Scenario, n = N, seed = 42) {
  const sim = new Simulation({ seed })
  try {
    return await sc.run(sim, n)
  } finally {
    await sim.stop()
  }
}

t.test(`${N} nodes join and converge; a new capability reaches every replica`, async (t) => {
  const m = await run(joinAndSpread)
  t.equal(m.wronglyDead, 0, 'no healthy node declared dead')
  t.comment(`converged ${Math.round(m.convergeMs)} ms after the last start; new capability at 99 % in ${Math.round(m.spread99Ms)} ms, 100 % in ${Math.round(m.spread100Ms)} ms`)
})

t.test('a crashed node is dropped by every replica, and nobody else', async (t) => {
  const m = await run(crashDetected)
  t.equal(m.wronglyDead, 0)
  t.comment(`dropped everywhere in ${Math.round(m.detectMs)} ms`)
})

t.test('a partition of the mesh in two halves heals', async (t) => {
  const m = await run(partitionHeals(5_000))
  t.equal(m.wronglyDead, 0, 'after the heal, every member lists every other as alive')
  t.comment(`each side dropped the other in ${Math.round(m.splitMs)} ms; reconverged ${Math.round(m.healMs)} ms after the heal`)
})

t.test('with the bootstrap dead, a new node joins through an agent and reaches every replica', async (t) => {
  const m = await run(bootstrapKilled)
  t.equal(m.wronglyDead, 0)
})

t.test('5 % message loss: a new capability still reaches everyone; nobody is declared dead', async (t) => {
  const m = await run(lossy(0.05))
  t.equal(m.wronglyDead, 0)
})

t.test('churn: crashes and joins; the mesh converges to exactly the live members', async (t) => {
  const m = await run(churn(5))
  t.equal(m.wronglyDead, 0)
})

t.test('virtual time: the same code on a clock that advances only when the process is idle', async (t) => {
  const sim = new Simulation({ seed: 9, virtualTime: true })
  try {
    const m = await crashDetected.run(sim, 30)
    t.equal(m.wronglyDead, 0)
    // Protocol time, free of CPU queueing: at least the suspicion minimum, within its maximum.
    t.ok(m.detectMs >= 1_000 && m.detectMs <= 8_000, `crash detected in ${Math.round(m.detectMs)} virtual ms`)
  } finally {
    await sim.stop()
  }
})
