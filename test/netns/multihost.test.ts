// Several hosts on this machine as Linux network namespaces on a bridge, each running agent
// processes over real TCP on its own address. Partitions are iptables DROP rules, loss is an
// nftables rule (numgen random). Needs root and iproute2, iptables, nftables: without them the
// test skips loudly, except with CI=true, where a skip fails the run.
import t from 'tap'
import { spawnAgent, stopAll } from '../helpers/cluster.ts'
import { waitFor } from '../helpers/wait.ts'
import type { AgentProcess } from '../helpers/cluster.ts'
import { createHosts, cut, lossless, lossy, netnsMissing, uncut } from '../helpers/netns.ts'
import type { Host } from '../helpers/netns.ts'

const missing = await netnsMissing()
if (missing !== undefined) {
  if (process.env.CI === 'true') {
    t.fail(`multi-host tests cannot run: ${missing}; CI must provide them (.ci/run installs the packages)`)
  } else {
    console.error(`\n*** SKIPPING the multi-host (netns) tests: ${missing} ***\n`)
    t.plan(0, `multi-host tests skipped: ${missing}`)
  }
} else {
  await main()
}

async function main (): Promise<void> {
  t.setTimeout(300_000)
  const MESH = `netns-${process.pid}`
  const { hosts, cleanup } = await createHosts(5)
  const agents: AgentProcess[] = []
  t.teardown(async () => {
    await stopAll(agents)
    await cleanup()
  })
  const [h1, h2, h3, h4, h5] = hosts
  let seq = 0
  const start = async (host: Host, bootstrap: string[], role = 'agent'): Promise<AgentProcess> => {
    const name = `${role}-${seq++}`
    const a = await spawnAgent({
      name, role, mesh: MESH, bootstrap, colocated: false, listen: [`/ip4/${host.ip}/tcp/0`],
      advert: { tools: [{ name: 'tool', capability: `cap-${name}`, version: '1.0.0' }] },
    }, host.wrap)
    agents.push(a)
    return a
  }
  const live = (): AgentProcess[] => agents.filter((a) => a.proc.exitCode === null && a.proc.signalCode === null)
  /** Every process in `viewers` lists exactly `expected` as alive or suspect. */
  const sees = async (viewers: AgentProcess[], expected: AgentProcess[]): Promise<boolean> => {
    const want = new Set(expected.map((a) => a.peerId))
    for (const v of viewers) {
      const up = new Set((await v.members()).filter((m) => m.liveness === 'alive' || m.liveness === 'suspect').map((m) => m.peerId))
      if (up.size !== want.size || [...want].some((p) => !up.has(p))) return false
    }
    return true
  }
  /** Where each process's change log stands now (`deathsSince` reads only what came after). */
  const mark = (among: AgentProcess[]): Map<AgentProcess, number> => new Map(among.map((a) => [a, a.changes.length]))
  /** Every time one of `among` declared another of `among` dead since `since`, even if it came back. */
  const deathsSince = (since: Map<AgentProcess, number>, among: AgentProcess[]): string[] => {
    const ids = new Set(among.map((a) => a.peerId))
    return [...since].flatMap(([v, from]) => v.changes.slice(from).filter((c) => c.after === 'dead' && ids.has(c.peerId)).map((c) => `${v.name}: ${c.name}`))
  }
  /** Probes each of `among` has sent so far. */
  const probes = async (among: AgentProcess[]): Promise<number[]> => Promise.all(among.map(async (a) => Number((await a.stats()).probes)))
  const wronglyDead = async (among: AgentProcess[]): Promise<number> => {
    const ids = new Set(among.map((a) => a.peerId))
    let n = 0
    for (const v of among) n += (await v.members()).filter((m) => ids.has(m.peerId) && (m.liveness === 'dead' || m.liveness === 'left')).length
    return n
  }

  const boot = await start(h1, [], 'bootstrap')
  for (const h of [h2, h3, h4, h5]) {
    await start(h, boot.addrs)
    await start(h, boot.addrs)
  }
  const converge = await waitFor('9 processes on 5 hosts to converge', async () => sees(live(), live()), 60_000, 100)
  t.comment(`converged ${converge} ms after the last start`)

  t.test('5 % packet loss on every host: a newcomer reaches every replica, nobody is declared dead', async (t) => {
    const before = mark(live())
    for (const h of hosts) await lossy(h, 5)
    try {
      const newcomer = await start(h5, boot.addrs)
      const ms = await waitFor('every replica to list the newcomer under loss', async () => sees(live(), live()), 60_000, 100)
      t.comment(`newcomer listed everywhere in ${ms} ms under 5 % loss`)
      // Several probe periods under loss, counted in probes rather than guessed in seconds: every
      // agent sends 20 more (at most 6 a second each), so a lost ping or ack has had its chances to
      // turn into a suspicion and a death.
      const from = await probes(live())
      const soak = await waitFor('every agent to send 20 more probes under loss', async () => (await probes(live())).every((n, i) => n >= (from[i] ?? 0) + 20), 60_000, 200)
      t.comment(`20 probes each took ${soak} ms`)
      t.equal(await wronglyDead(live()), 0, 'no healthy agent is dead now')
      // Before issue 9, 2 to 4 healthy agents were declared dead by several replicas under 5 % loss
      // (then refuted), which a check of the final state never saw.
      t.same(deathsSince(before, live()), [], 'no healthy agent declared dead at any moment')
      t.ok(await sees(live(), live()), 'still converged')
      t.ok(newcomer.peerId.length > 0)
    } finally {
      for (const h of hosts) await lossless(h)
    }
  })

  t.test('a partition of the mesh in two halves heals', async (t) => {
    const sideA = live().filter((a) => [h1, h2, h3].some((h) => a.addrs[0].includes(`/${h.ip}/`)))
    const sideB = live().filter((a) => !sideA.includes(a))
    const ipsA = [h1, h2, h3].map((h) => h.ip)
    const ipsB = [h4, h5].map((h) => h.ip)
    for (const h of [h1, h2, h3]) await cut(h, ipsB)
    for (const h of [h4, h5]) await cut(h, ipsA)
    const split = await waitFor('each side to drop the other', async () => (await sees(sideA, sideA)) && (await sees(sideB, sideB)), 60_000, 200)
    t.comment(`each side dropped the other in ${split} ms`)
    // The benchmark holds 30 s (NETNS_HOLD_MS=30000); CI holds 5 s.
    await new Promise((resolve) => setTimeout(resolve, Number(process.env.NETNS_HOLD_MS ?? 5_000)))
    for (const h of hosts) await uncut(h)
    const heal = await waitFor('the halves to reconverge', async () => sees(live(), live()), 60_000, 100)
    t.comment(`reconverged ${heal} ms after the heal`)
    t.equal(await wronglyDead(live()), 0)
  })

  t.test('the bootstrap host is cut off: agents drop it and a new agent joins through an agent', async (t) => {
    const others = live().filter((a) => a !== boot)
    const before = mark(others)
    await cut(h1, [h2, h3, h4, h5].map((h) => h.ip))
    await waitFor('every agent to drop the bootstrap', async () => sees(others, others), 60_000, 200)
    const door = others.find((a) => a.addrs[0].includes(`/${h2.ip}/`))!
    const joiner = await start(h4, [door.addrs[0]])
    const ms = await waitFor('the joiner to be listed everywhere', async () => sees(live().filter((a) => a !== boot), live().filter((a) => a !== boot)), 60_000, 100)
    t.comment(`joined through an agent and listed everywhere in ${ms} ms`)
    t.ok(joiner.peerId.length > 0)
    t.same(deathsSince(before, live().filter((a) => a !== boot)), [], 'no agent but the bootstrap declared dead at any moment')
  })
}
