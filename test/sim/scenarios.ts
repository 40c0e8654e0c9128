// Scenarios shared by the simulation tests (small sizes, in CI) and the benchmarks (large sizes).
// Each returns what it measured; tests assert outcomes, benchmarks report the numbers.
import { scenario } from './harness.ts'
import type { Simulation, SimMember } from './harness.ts'

const REAL = 'libp2p 3, gossipsub, the mesh codec, sync, SWIM probing, replica and resolver; transport: @libp2p/memory with plaintext'

/** Builds a converged mesh of one bootstrap and `n` agents; returns the agents. */
export async function converge (sim: Simulation, n: number): Promise<{ agents: SimMember[], startMs: number, convergeMs: number }> {
  const t0 = sim.now()
  await sim.bootstrap()
  const agents = await sim.add(n)
  const startMs = sim.now() - t0
  const convergeMs = await sim.until(`${n} agents to converge`, () => sim.converged(), 120_000 + n * 200)
  return { agents, startMs, convergeMs }
}

/** One new agent with a new capability: time until 99 % and 100 % of agents resolve it. */
export async function spreadNew (sim: Simulation, via?: string[]): Promise<{ p99Ms: number, p100Ms: number }> {
  const capability = `fresh-${Math.floor(sim.rng() * 1e9)}`
  sim.watch(capability)
  const t0 = sim.now()
  await sim.add(1, { capability: () => capability, ...(via === undefined ? {} : { via }) })
  await sim.until(`100% to resolve ${capability}`, () => sim.resolvable(capability) >= 1, 60_000, 5)
  // Exact times from the replicas' change events (polling only bounds the wait).
  const reached = sim.reachedAt(capability)
  const others = sim.up('agent').length - 1
  const at = (q: number): number => reached[Math.max(0, Math.ceil(q * others) - 1)] - t0
  return { p99Ms: at(0.99), p100Ms: at(1) }
}

const pick = <T>(sim: Simulation, xs: T[]): T => xs[Math.floor(sim.rng() * xs.length)]

/** A running agent chosen by the simulation's seed; on the model network, never one of its slow nodes. */
export function pickAgent (sim: Simulation): SimMember {
  for (;;) {
    const m = pick(sim, sim.up('agent'))
    if (sim.model?.node(m.node.peerId)?.slow !== true) return m
  }
}

/** False alarms over the whole run so far: healthy members declared dead, and suspected (see `Simulation.wrongfulDeaths`). */
export function falseAlarms (sim: Simulation): { wrongfulDeaths: number, wrongfulSuspicions: number } {
  return { wrongfulDeaths: sim.wrongfulDeaths().length, wrongfulSuspicions: sim.wrongfulSuspicions().length }
}

export const joinAndSpread = scenario('join, converge, spread a new capability', REAL, async (sim, n) => {
  const { startMs, convergeMs } = await converge(sim, n)
  const spread = await spreadNew(sim)
  return { startMs, convergeMs, spread99Ms: spread.p99Ms, spread100Ms: spread.p100Ms, ...falseAlarms(sim) }
})

export const crashDetected = scenario('a crashed agent is dropped by every replica', REAL, async (sim, n) => {
  const { agents } = await converge(sim, n)
  const victim = pick(sim, agents)
  const t0 = sim.now()
  await sim.crash(victim.name)
  await sim.until(`every replica to drop ${victim.name}`, () => sim.listing(victim.node.peerId) === 0, 60_000, 10)
  const detectMs = sim.now() - t0
  return { detectMs, ...falseAlarms(sim) }
})

/** Splits the mesh in two halves for `holdMs`, heals, and times the reconvergence. */
export function partitionHeals (holdMs: number) {
  return scenario(`a partition of ${holdMs / 1000} s heals`, REAL + '; partitions: the connection gater', async (sim, n) => {
    await converge(sim, n)
    const all = sim.up()
    const shuffled = [...all].sort(() => sim.rng() - 0.5)
    const a = shuffled.slice(0, Math.floor(all.length / 2))
    const b = shuffled.slice(a.length)
    const t0 = sim.now()
    await sim.partition(a, b)
    // Each side drops the other (every member of A lists no member of B, and back).
    const split = (): boolean => a.every((m) => b.every((o) => m.node.replica.get(o.node.peerId)?.liveness === 'dead' || m.node.replica.get(o.node.peerId)?.liveness === 'left')) &&
      b.every((m) => a.every((o) => m.node.replica.get(o.node.peerId)?.liveness === 'dead' || m.node.replica.get(o.node.peerId)?.liveness === 'left'))
    const splitMs = await sim.until('each side to drop the other', split, 120_000 + holdMs, 50)
    const rest = holdMs - (sim.now() - t0)
    if (rest > 0) await sim.sleep(rest)
    const t1 = sim.now()
    sim.heal()
    const healMs = await sim.until('the mesh to reconverge after the heal', () => sim.converged(), 120_000, 20)
    return { splitMs, heldMs: t1 - t0, healMs, ...falseAlarms(sim) }
  })
}

export const bootstrapKilled = scenario('the bootstrap dies; a new agent joins through an agent', REAL, async (sim, n) => {
  const { agents } = await converge(sim, n)
  const [boot] = sim.up('bootstrap')
  await sim.crash(boot.name)
  await sim.until('every replica to drop the bootstrap', () => sim.listing(boot.node.peerId) === 0, 60_000)
  const door = pick(sim, agents).node.addrs.slice(0, 1)
  const spread = await spreadNew(sim, door)
  return { join99Ms: spread.p99Ms, join100Ms: spread.p100Ms, ...falseAlarms(sim) }
})

export const lossy = (rate: number) => scenario(`${rate * 100} % message loss`, REAL + '; loss: inbound gossip and probe pings dropped at random', async (sim, n) => {
  await converge(sim, n)
  sim.loss = rate
  const spread = await spreadNew(sim)
  // Hold the loss long enough for probing to face it (several probe periods).
  await sim.sleep(5_000)
  sim.loss = 0
  return { spread99Ms: spread.p99Ms, spread100Ms: spread.p100Ms, ...falseAlarms(sim) }
})

export const churn = (rounds: number) => scenario(`churn: ${rounds} crashes and ${rounds} joins`, REAL, async (sim, n) => {
  await converge(sim, n)
  const t0 = sim.now()
  for (let i = 0; i < rounds; i++) {
    await sim.crash(pick(sim, sim.up('agent')).name)
    await sim.add(1)
    await sim.sleep(200)
  }
  const settleMs = await sim.until('the mesh to converge after churn', () => sim.converged(), 60_000)
  return { churnMs: sim.now() - t0, settleMs, ...falseAlarms(sim) }
})

/**
 * Proves the false-death count can fail: a healthy agent loses every probe ping to and from it,
 * and every gossip message it receives, for `holdMs` (`Simulation.blackout`), so its peers declare
 * it dead; then the blackout ends, it refutes, and every replica lists it alive again. The
 * scenario reports the false deaths over the whole run, and whether the mesh converged at the end.
 */
export function blackoutRefuted (holdMs: number) {
  return scenario(`a healthy agent in a ${holdMs / 1000} s probe blackout is declared dead, then refutes`, REAL + '; blackout: the nodes\' lose seam', async (sim, n) => {
    const { agents } = await converge(sim, n)
    const victim = pick(sim, agents)
    const t0 = sim.now()
    sim.blackout(victim.name, true)
    const deadMs = await sim.until(`a peer to declare ${victim.name} dead`, () => sim.wrongfulDeaths().some((e) => e.subject === victim.name), holdMs, 20).catch(() => -1)
    const rest = holdMs - (sim.now() - t0)
    if (rest > 0) await sim.sleep(rest)
    sim.blackout(victim.name, false)
    const backMs = await sim.until(`every replica to list ${victim.name} again`, () => sim.converged(), 60_000, 20)
    const deaths = sim.wrongfulDeaths()
    return { deadMs, backMs, ...falseAlarms(sim), victimDeaths: deaths.filter((e) => e.subject === victim.name).length, listing: sim.listing(victim.node.peerId), members: sim.up().length }
  })
}
