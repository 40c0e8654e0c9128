// Real OS processes over real TCP: joins, crashes, hangs, a dead bootstrap and a partition.
import t from 'tap'
import { spawnAgent, livenessOf, stopAll } from '../helpers/cluster.ts'
import { waitFor } from '../helpers/wait.ts'
import type { AgentProcess } from '../helpers/cluster.ts'

// Starting several agent processes takes most of a minute on 2 cores that other work shares: the
// bound on the whole file is wide, since it limits waiting and measures nothing.
t.setTimeout(300_000)

// A wide suspicion window, so a process resumed with SIGCONT has time to refute before it is declared dead.
const timing = { suspicionMinTimeoutMs: 2_000, suspicionMaxTimeoutMs: 6_000 }
const all: AgentProcess[] = []
t.teardown(async () => { await stopAll(all) })

const spawn = async (name: string, bootstrap: string[], role = 'agent'): Promise<AgentProcess> => {
  const a = await spawnAgent({ name, role, bootstrap, timing, advert: { tools: [{ name: `${name}_tool`, capability: `cap_${name}`, version: '1.0.0' }] } })
  all.push(a)
  return a
}
// Bounds of 60 s: each check asks every process over IPC, which is slow when the cores are busy.
const everyone = (agents: AgentProcess[], about: AgentProcess, liveness: string): Promise<number> =>
  waitFor(`${about.name} ${liveness} on ${agents.map((a) => a.name).join(',')}`, async () =>
    (await Promise.all(agents.map(async (a) => await livenessOf(a, about.peerId) === liveness))).every(Boolean), 60_000)
/** Where each process's change log stands now: `deaths` reads only what came after. */
const mark = (agents: AgentProcess[]): Map<AgentProcess, number> => new Map(agents.map((a) => [a, a.changes.length]))
/** `viewer name: about name` for each time a viewer declared one of `about` dead after `since`. */
const deaths = (since: Map<AgentProcess, number>, about: AgentProcess[]): string[] =>
  [...since].flatMap(([v, from]) => v.changes.slice(from)
    .filter((c) => c.after === 'dead' && about.some((a) => a.peerId === c.peerId))
    .map((c) => `${v.name}: ${c.name}`))

t.test('agents discover each other and detect failures', async (t) => {
  const boot = await spawn('boot', [], 'bootstrap')
  const door = [boot.addrs[0]]
  const agents = await Promise.all(['a0', 'a1', 'a2', 'a3', 'a4'].map(async (n) => spawn(n, door)))
  const [a0, a1, a2, a3, a4] = agents
  const started = mark([boot, ...agents])

  for (const about of [boot, ...agents]) await everyone(agents, about, 'alive')
  t.pass('five agents joined through the bootstrap and every replica lists all six members alive')

  a4.signal('SIGKILL')
  await everyone([boot, a0, a1, a2, a3], a4, 'dead')
  t.pass('kill -9: every replica drops the crashed agent')

  a3.signal('SIGSTOP')
  await everyone([boot, a0, a1, a2], a3, 'dead')
  t.pass('SIGSTOP: a hung agent is suspected and dropped by every replica')
  a3.signal('SIGKILL')

  // Every death so far, in every replica's change log (refuted ones too): only the two victims.
  t.same(deaths(started, [boot, a0, a1, a2]), [], 'no healthy agent was declared dead during the joins, the crash and the hang')

  const a5 = await spawn('a5', door)
  await everyone([boot, a0, a1, a2], a5, 'alive')
  const before = (await a0.members()).find((m) => m.peerId === a5.peerId)!.incarnation
  const stopped = mark([boot, a0, a1, a2])
  a5.signal('SIGSTOP')
  await waitFor('someone suspects a5', async () => (await Promise.all([a0, a1, a2, boot].map(async (a) => livenessOf(a, a5.peerId)))).includes('suspect'), 60_000)
  a5.signal('SIGCONT')
  await waitFor('a5 refuted on every replica', async () => (await Promise.all([a0, a1, a2, boot].map(async (a) => {
    const m = (await a.members()).find((x) => x.peerId === a5.peerId)
    return m?.liveness === 'alive' && m.incarnation > before
  }))).every(Boolean), 60_000)
  t.pass('SIGSTOP then SIGCONT before the timeout: the agent refutes with a higher incarnation')
  // It stays: every replica now holds a5 at the refuting incarnation, so every suspicion of the old
  // one is stale there and its death timer is cancelled (test/topology/replica.test.ts checks that
  // on a manual clock); no window is needed. A replica may have declared it dead before the
  // refutation reached it, when the cores are so busy that the refutation took longer than the
  // suspicion timeout: that is the protocol working, so it is reported, not failed.
  const early = deaths(stopped, [a5])
  if (early.length > 0) t.comment(`a5 was declared dead before its refutation arrived (then revived): ${early.join('; ')}`)

  const bootKilled = mark([a0, a1, a2, a5])
  boot.signal('SIGKILL')
  await everyone([a0, a1, a2, a5], boot, 'dead')
  for (const about of [a0, a1, a2, a5]) await everyone([a0, a1, a2, a5], about, 'alive')
  t.pass('with the bootstrap dead, the agents stay converged')
  const a6 = await spawn('a6', [a0.addrs[0]])
  await everyone([a0, a1, a2, a5], a6, 'alive')
  for (const about of [a0, a1, a2, a5]) await everyone([a6], about, 'alive')
  t.pass('a6 joined through a plain agent and lists every agent alive')
  t.same(deaths(bootKilled, [a0, a1, a2, a5, a6]), [], 'no healthy agent was declared dead, even for a moment, after the bootstrap died')

  // Two groups cut off from each other by their connection gaters, then healed.
  const left = [a0, a1]
  const right = [a2, a5, a6]
  await Promise.all(left.map(async (a) => a.deny(right.map((r) => r.peerId))))
  await Promise.all(right.map(async (a) => a.deny(left.map((l) => l.peerId))))
  for (const about of right) await everyone(left, about, 'dead')
  for (const about of left) await everyone(right, about, 'dead')
  t.pass('partition: each side declares the other dead')
  await Promise.all([...left, ...right].map(async (a) => a.allow()))
  const healed = await waitFor('every replica lists every member alive after the heal', async () => {
    const views = await Promise.all([...left, ...right].map(async (a) => a.members()))
    return views.every((v) => [...left, ...right].every((m) => v.find((x) => x.peerId === m.peerId)?.liveness === 'alive'))
  }, 60_000)
  t.pass(`partition healed: replicas reconverged (${healed} ms)`)
})
