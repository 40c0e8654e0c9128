// Failure detection on a loaded host, in the model simulation (virtual time, so the outcome does
// not depend on how busy the machine running the test is): the storm of false suspicions that a
// burst of joins used to start, a node stalled by its own work, and a helper asked to probe a
// member it holds no connection to.
import t from 'tap'
import { Simulation } from './harness.ts'
import { converge } from './scenarios.ts'

t.setTimeout(300_000)

/** Per-hop CPU as last measured on the real stack (bench/calibrate.ts, BENCHMARKS.md), with Noise. */
const COSTS = { messageMs: 0.95, duplicateMs: 0.05, frameMs: 0.22, connectMs: 11.2 }

t.test('a burst of 100 joins on one shared CPU: no healthy member is ever declared dead', async (t) => {
  // One CPU for all (the one-process harness), with the per-hop costs measured with Noise: the
  // joins' handshakes and snapshots queue every ack behind them. Before timeouts were decided
  // after pending work and only when the node was not itself behind, and before helpers stopped
  // dialling, 60 joins already never converged (a storm of false suspicions, over 5,000 false
  // deaths in 15 s). With everything but the lateness check, this run declared over 6,000.
  const sim = new Simulation({ seed: 1, network: 'model', model: { cpu: 'shared', latencyMs: 0, jitterMs: 0, costs: COSTS } })
  try {
    const joined = converge(sim, 100)
    await sim.sleep(15_000)
    await joined
    t.same(sim.wrongfulDeaths(), [], 'no running member was ever declared dead')
    const late = sim.up().reduce((n, m) => n + m.node.stats.probesLate, 0)
    t.ok(late > 0, `${late} probes were judged too late to accuse anyone`)
    t.comment(`${sim.wrongfulSuspicions().length} suspicions, every one refuted`)
  } finally {
    await sim.stop()
  }
})

t.test('a node stalled by its own work accuses nobody; the others do not evict it', async (t) => {
  // 20 ms links, so acks are in flight when the stall begins and arrive while it lasts.
  const sim = new Simulation({ seed: 11, network: 'model', model: { cpu: 'per-node', latencyMs: 20, jitterMs: 2, costs: COSTS } })
  try {
    const agents = await sim.seedConverged(20, 3_000)
    const stalled = agents[3]
    const net = sim.model!.node(stalled.node.peerId)!
    const raised = stalled.node.stats.suspicionsRaised
    // 1.2 s of work queued on its CPU, three times (a long GC pause, a burst of requests): its
    // probe timers fire on time, but the acks of its neighbours wait behind that work. Judged at
    // once, those probes failed, and so did the helpers' answers queued behind them: it accused
    // its healthy neighbours.
    for (let i = 0; i < 3; i++) {
      sim.model!.cpu(net, 1_200, () => {})
      await sim.sleep(4_000)
    }
    t.equal(stalled.node.stats.suspicionsRaised - raised, 0, 'the stalled node raised no suspicion of its healthy neighbours')
    t.same(sim.wrongfulDeaths(), [], 'nobody was declared dead')
  } finally {
    await sim.stop()
  }
})

t.test('a helper asked to probe a member it is not connected to answers at once, without dialling', async (t) => {
  const sim = new Simulation({ seed: 3, network: 'model', model: { cpu: 'per-node', latencyMs: 1, jitterMs: 0, costs: COSTS } })
  try {
    const agents = await sim.seedConverged(12, 3_000)
    const before = new Map(agents.map((m) => [m, new Set(m.node.neighbours())]))
    // Lose every ping from now on: direct probes fail and every neighbour asks helpers. Helpers
    // that were not connected to a target used to dial it; now no connection is opened.
    sim.loss = 1
    await sim.sleep(1_500)
    sim.loss = 0
    const opened = agents.flatMap((m) => m.node.neighbours().filter((p) => !before.get(m)!.has(p)).map((p) => `${m.name}->${p.slice(-6)}`))
    t.same(opened, [], 'no new connection was opened by indirect probes')
    t.ok(agents.reduce((n, m) => n + m.node.stats.probeFailures, 0) > 0, 'probes did fail and ask helpers')
  } finally {
    await sim.stop()
  }
})
