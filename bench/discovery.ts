// Discovery benchmark with real agent processes on this machine (default timing, loopback TCP):
// - join: from a new agent's start() until every other agent can resolve its capability
// - kill -9 and SIGSTOP: from the signal until no replica lists the agent as alive or suspect
// - idle gossip bytes per node per second
// - wrongful suspicions and deaths of agents that were neither killed nor stopped, from every
//   replica's change events over the whole run (start-up burst, idle, CPU saturation, rounds)
// Usage: node bench/discovery.ts [--agents 20] [--rounds 10] [--idle 10] [--burn 15] [--out results/discovery.json]
// bench/discovery-runs.ts runs it several times and tabulates the runs.
import { readFile, writeFile, mkdir } from 'node:fs/promises'
import { parseArgs } from 'node:util'
import os from 'node:os'
import { spawnAgent, stopAll } from '../test/helpers/cluster.ts'
import { waitFor } from '../test/helpers/wait.ts'
import type { AgentProcess } from '../test/helpers/cluster.ts'

const { values } = parseArgs({ options: { agents: { type: 'string', default: '20' }, rounds: { type: 'string', default: '10' }, idle: { type: 'string', default: '10' }, burn: { type: 'string', default: '15' }, out: { type: 'string', default: 'results/discovery.json' } } })
const BURN_S = Number(values.burn)
const N = Number(values.agents)
const ROUNDS = Number(values.rounds)
const IDLE_S = Number(values.idle)

const pct = (xs: number[], p: number): number => {
  const s = [...xs].sort((a, b) => a - b)
  return s[Math.min(s.length - 1, Math.ceil((p / 100) * s.length) - 1)]
}
const summary = (xs: number[]) => ({ n: xs.length, p50: pct(xs, 50), p99: pct(xs, 99), max: Math.max(...xs) })
const mean = (xs: number[]): number => Math.round(xs.reduce((s, x) => s + x, 0) / xs.length)
const ioBytes = async (pid: number): Promise<number> => {
  const text = await readFile(`/proc/${pid}/io`, 'utf8').catch(() => '')
  const get = (k: string): number => Number(text.match(new RegExp(`^${k}: (\\d+)`, 'm'))?.[1] ?? 0)
  return get('rchar') + get('wchar')
}

const all: AgentProcess[] = []
/** When each victim was killed or stopped: a death seen after it is right, before it wrongful. */
const downAt = new Map<string, number>()
const signal = (a: AgentProcess, sig: NodeJS.Signals): void => {
  if (!downAt.has(a.peerId)) downAt.set(a.peerId, Date.now())
  a.signal(sig)
}
/** Phase boundaries, for saying when wrongful events happened. */
const phases: Array<{ name: string, from: number }> = [{ name: 'start-up', from: Date.now() }]
let seq = 0
const spawn = async (bootstrap: string[], role = 'agent'): Promise<AgentProcess> => {
  const name = `b${seq++}`
  const a = await spawnAgent({ name, role, bootstrap, advert: { tools: [{ name: 'tool', capability: `cap_${name}`, version: '1.0.0' }] } })
  all.push(a)
  return a
}
/**
 * A settled agent: connected to at least 3 neighbours (at most 3 s after it joined). Detection of an
 * agent killed within ~200 ms of joining, before it has neighbours, waits the full suspicion timeout.
 */
const settle = async (a: AgentProcess): Promise<void> => {
  await waitFor('neighbours', async () => ((await a.stats()) as { neighbours: number }).neighbours >= 3, 3_000).catch(() => {})
}
/** The time at which the last of `viewers` reported `peerId` as one of `states`. */
const lastEvent = (viewers: AgentProcess[], peerId: string, states: string[], after: number): number | undefined => {
  let last = 0
  for (const v of viewers) {
    const e = v.changes.find((c) => c.peerId === peerId && states.includes(c.after) && c.at >= after)
    if (e === undefined) return undefined
    last = Math.max(last, e.at)
  }
  return last
}

try {
  const boot = await spawn([], 'bootstrap')
  const door = [boot.addrs[0]]
  const agents: AgentProcess[] = [boot]
  while (agents.length < N) agents.push(...await Promise.all(Array.from({ length: Math.min(5, N - agents.length) }, async () => spawn(door))))
  for (const a of agents) await waitFor(`${a.name} known to all`, () => lastEvent(agents.filter((x) => x !== a), a.peerId, ['alive'], 0) !== undefined, 60_000)
  console.log(`${N} processes converged`)
  const runFrom = Date.now()
  const runBefore = await Promise.all(agents.map(async (a) => ({ io: await ioBytes(a.proc.pid!), stats: await a.stats() as { syncBytes: { in: number, out: number }, probeBytes: { in: number, out: number } } })))
  await new Promise((resolve) => setTimeout(resolve, 2_000))
  phases.push({ name: 'idle', from: Date.now() })

  // Idle: nothing changes; count the bytes each process reads and writes.
  const before = await Promise.all(agents.map(async (a) => ({ io: await ioBytes(a.proc.pid!), stats: await a.stats() as { syncBytes: { in: number, out: number }, probeBytes: { in: number, out: number } } })))
  await new Promise((resolve) => setTimeout(resolve, IDLE_S * 1_000))
  const after = await Promise.all(agents.map(async (a) => ({ io: await ioBytes(a.proc.pid!), stats: await a.stats() as typeof before[number]['stats'] })))
  const app = after.map((x, i) => (x.stats.syncBytes.in + x.stats.syncBytes.out + x.stats.probeBytes.in + x.stats.probeBytes.out - before[i].stats.syncBytes.in - before[i].stats.syncBytes.out - before[i].stats.probeBytes.in - before[i].stats.probeBytes.out) / IDLE_S)
  const sys = after.map((x, i) => (x.io - before[i].io) / IDLE_S)
  const churn = (k: string): number => after.reduce((s, x, i) => s + ((x.stats as never)[k] as number) - ((before[i].stats as never)[k] as number), 0)
  console.log(`idle ${IDLE_S} s: ${churn('suspicionsRaised')} suspicions raised, ${churn('refutations')} refutations, ${churn('syncs')} anti-entropy rounds, ${churn('probes')} probes, ${churn('probeFailures')} failed`)

  // Saturation: a busy loop per core in other processes; count suspicions and wrong deaths.
  let saturation: { seconds: number, burners: number, suspicionsRaised: number, suspectEvents: number, deadEvents: number } | undefined
  if (BURN_S > 0) {
    const { spawn: spawnProcess } = await import('node:child_process')
    phases.push({ name: 'cpu saturation', from: Date.now() })
    const burners = os.cpus().map(() => spawnProcess(process.execPath, ['-e', 'for (;;) {}'], { stdio: 'ignore' }))
    const raised0 = await Promise.all(agents.map(async (a) => ((await a.stats()) as { suspicionsRaised: number }).suspicionsRaised))
    const from = Date.now()
    await new Promise((resolve) => setTimeout(resolve, BURN_S * 1_000))
    for (const b of burners) b.kill('SIGKILL')
    await new Promise((resolve) => setTimeout(resolve, 3_000)) // suspicions raised late still count
    const raised1 = await Promise.all(agents.map(async (a) => ((await a.stats()) as { suspicionsRaised: number }).suspicionsRaised))
    const events = (state: string): number => agents.reduce((n, a) => n + a.changes.filter((c) => c.at >= from && c.after === state).length, 0)
    saturation = { seconds: BURN_S, burners: burners.length, suspicionsRaised: raised1.reduce((s, x, i) => s + x - raised0[i], 0), suspectEvents: events('suspect'), deadEvents: events('dead') }
    console.log(`CPU saturated by ${burners.length} busy loops for ${BURN_S} s: ${saturation.suspicionsRaised} suspicions raised, ${saturation.suspectEvents} suspect transitions seen, ${saturation.deadEvents} healthy agents wrongly declared dead`)
  }

  let misses = 0
  const join: number[] = []
  const joinFromSpawn: number[] = []
  const kill: number[] = []
  const stop: number[] = []
  phases.push({ name: 'rounds', from: Date.now() })
  for (let r = 0; r < ROUNDS; r++) {
    const others = agents.slice(1) // any agent is a door; the bootstrap too
    const fresh = await spawn([others[r % others.length].addrs[0]])
    await waitFor('join seen by all', () => lastEvent(agents, fresh.peerId, ['alive'], 0) !== undefined, 30_000)
    const seen = lastEvent(agents, fresh.peerId, ['alive'], 0)!
    join.push(seen - fresh.startedAt)
    if (process.env.BENCH_DEBUG !== undefined && seen - fresh.startedAt > 1_000) {
      const late = agents.map((a) => ({ name: a.name, at: a.changes.find((c) => c.peerId === fresh.peerId && c.after === 'alive')!.at - fresh.startedAt })).sort((x, y) => y.at - x.at)
      console.error(`slow join of ${fresh.name} through ${others[r % others.length].name}: latest viewers ${late.slice(0, 4).map((l) => `${l.name}@${l.at}`).join(' ')}; median ${late[late.length >> 1].at}`)
    }
    joinFromSpawn.push(seen - fresh.spawnedAt)

    if (process.env.BENCH_DEBUG !== undefined) console.error(`${fresh.name} has ${((await fresh.stats()) as { neighbours: number }).neighbours} neighbours when killed`)
    await settle(fresh)
    const raisedBefore = process.env.BENCH_DEBUG === undefined ? [] : await Promise.all(agents.map(async (a) => ((await a.stats()) as { suspicionsRaised: number }).suspicionsRaised))
    const killed = Date.now()
    signal(fresh, 'SIGKILL')
    await waitFor('kill -9 seen by all', () => lastEvent(agents, fresh.peerId, ['dead', 'left'], killed) !== undefined, 30_000)
    kill.push(lastEvent(agents, fresh.peerId, ['dead', 'left'], killed)! - killed)
    if (process.env.BENCH_DEBUG !== undefined && kill.at(-1)! > 3_000) {
      const line = (a: AgentProcess): string => `${a.name}:${a.changes.filter((c) => c.peerId === fresh.peerId && c.at >= killed).map((c) => `${c.after}@${c.at - killed}`).join(',')}`
      const raised = await Promise.all(agents.map(async (a, i) => ((await a.stats()) as { suspicionsRaised: number }).suspicionsRaised - raisedBefore[i]))
      console.error(`slow kill -9 detection of ${fresh.name}: raised by ${agents.filter((_, i) => raised[i] > 0).map((a) => a.name).join(',')}; ${agents.map(line).join(' ')}`)
    }

    const hung = await spawn(door)
    await waitFor('join seen by all', () => lastEvent(agents, hung.peerId, ['alive'], 0) !== undefined, 30_000)
    await settle(hung)
    const degree = process.env.BENCH_DEBUG === undefined ? undefined : ((await hung.stats()) as { neighbours: number }).neighbours
    type Counters = { suspicionsRaised: number, probesLate: number }
    const countersBefore = process.env.BENCH_DEBUG === undefined ? [] : await Promise.all(agents.map(async (a) => (await a.stats()) as Counters))
    const stopped = Date.now()
    signal(hung, 'SIGSTOP')
    // A miss (not every replica dropped it within 30 s) is recorded as 30 s and reported as such.
    const seenStop = await waitFor('SIGSTOP seen by all', () => lastEvent(agents, hung.peerId, ['dead'], stopped) !== undefined, 30_000).then(() => true, () => false)
    stop.push(seenStop ? lastEvent(agents, hung.peerId, ['dead'], stopped)! - stopped : 30_000)
    if (!seenStop) misses++
    if (process.env.BENCH_DEBUG !== undefined && stop.at(-1)! > 2_500) {
      const line = (a: AgentProcess): string => `${a.name}:${a.changes.filter((c) => c.peerId === hung.peerId && c.at >= stopped).map((c) => `${c.after}@${c.at - stopped}`).join(',')}`
      // Who raised or confirmed the suspicion, and who decided a probe late (its own backlog) meanwhile.
      const after = await Promise.all(agents.map(async (a) => (await a.stats()) as Counters))
      const moved = agents.map((a, i) => ({ name: a.name, raised: after[i].suspicionsRaised - countersBefore[i].suspicionsRaised, late: after[i].probesLate - countersBefore[i].probesLate })).filter((m) => m.raised > 0 || m.late > 0)
      console.error(`slow SIGSTOP detection of ${hung.name} (${stop.at(-1)} ms, ${degree} neighbours): voices and late probes ${moved.map((m) => `${m.name}:${m.raised}/${m.late}`).join(' ')}; ${agents.map(line).join(' ')}`)
    }
    signal(hung, 'SIGKILL')
    await new Promise((resolve) => setTimeout(resolve, 300))
    process.stdout.write(`round ${r + 1}/${ROUNDS}: join ${join.at(-1)} ms, kill -9 ${kill.at(-1)} ms, SIGSTOP ${stop.at(-1)} ms\n`)
  }

  // Traffic over the whole run (idle, saturation and the churn of the rounds), for the agents that ran throughout.
  const runAfter = await Promise.all(agents.map(async (a) => ({ io: await ioBytes(a.proc.pid!), stats: await a.stats() as typeof runBefore[number]['stats'] })))
  const runSecs = (Date.now() - runFrom) / 1000
  const payloadOf = (x: typeof runBefore[number]['stats']): number => x.syncBytes.in + x.syncBytes.out + x.probeBytes.in + x.probeBytes.out
  const wholeRun = {
    seconds: Math.round(runSecs),
    meshPayload: mean(runAfter.map((x, i) => (payloadOf(x.stats) - payloadOf(runBefore[i].stats)) / runSecs)),
    syscallReadWrite: mean(runAfter.map((x, i) => (x.io - runBefore[i].io) / runSecs)),
  }

  // Every replica's events (the agents that were killed included, while they ran): a member that
  // was not killed or stopped by then, seen dead or suspect, is a wrongful death or suspicion.
  const phaseOf = (at: number): string => phases.filter((p) => p.from <= at).at(-1)!.name
  const wrongful = (state: string) => all.flatMap((o) => o.changes
    .filter((c) => c.after === state && c.peerId !== o.peerId && (downAt.get(c.peerId) ?? Infinity) > c.at)
    .map((c) => ({ observer: o.name, subject: c.name, at: c.at, phase: phaseOf(c.at) })))
  const deaths = wrongful('dead')
  const suspicions = wrongful('suspect')
  const byPhase = (xs: Array<{ phase: string }>): Record<string, number> => Object.fromEntries(phases.map((p) => [p.name, xs.filter((x) => x.phase === p.name).length]))
  const falseDeaths = new Set(deaths.map((d) => d.subject)).size
  if (process.env.BENCH_DEBUG !== undefined) {
    // Each healthy agent declared dead: every replica's changes of it, from its spawn to 3 s past
    // the last death, in ms after its spawn, with the incarnation; and when each observer started.
    for (const name of new Set(deaths.map((d) => d.subject))) {
      const subject = all.find((a) => a.name === name)!
      const until = Math.max(...deaths.filter((d) => d.subject === name).map((d) => d.at)) + 3_000
      const rel = (t: number): number => t - subject.spawnedAt
      const lines = all.map((o) => `${o.name}(started ${rel(o.startedAt)}):${o.changes.filter((c) => c.peerId === subject.peerId && c.at <= until).map((c) => `${c.after}/${c.incarnation % 100_000}@${rel(c.at)}`).join(',')}`)
      console.error(`healthy ${name} declared dead (started ${rel(subject.startedAt)} ms after spawn; ${((await subject.stats()) as { refutations: number }).refutations} refutations): ${lines.join(' ')}`)
    }
  }
  const falseSuspicions = suspicions.length
  const result = {
    machine: { cpus: os.cpus().length, model: os.cpus()[0]?.model, node: process.version, date: new Date().toISOString() },
    agents: N,
    joinMs: summary(join),
    joinFromSpawnMs: summary(joinFromSpawn),
    killDetectMs: summary(kill),
    stopDetectMs: summary(stop),
    stopMisses: misses,
    falseDeaths,
    falseDeathEvents: deaths.length,
    falseDeathsByPhase: byPhase(deaths),
    falseDeathList: deaths.slice(0, 50),
    falseSuspicions,
    falseSuspicionsByPhase: byPhase(suspicions),
    idleBytesPerNodePerSecond: { meshPayload: mean(app), syscallReadWrite: mean(sys) },
    wholeRunBytesPerNodePerSecond: wholeRun,
    saturation,
  }
  console.log('\n| measure (%d agent processes) | p50 | p99 | max |', N)
  console.log('|---|---|---|---|')
  for (const [k, label] of [['joinMs', 'new agent start() until every replica resolves it'], ['joinFromSpawnMs', 'same, from process spawn (includes Node start-up)'], ['killDetectMs', 'kill -9 until no replica lists it'], ['stopDetectMs', 'SIGSTOP until no replica lists it']] as const) {
    const s = result[k]
    console.log(`| ${label} | ${s.p50} ms | ${s.p99} ms | ${s.max} ms |`)
  }
  console.log(`healthy agents wrongly suspected: ${falseSuspicions} times ${JSON.stringify(byPhase(suspicions))}; wrongly declared dead: ${falseDeaths} agents, ${deaths.length} times ${JSON.stringify(byPhase(deaths))}`)
  if (misses > 0) console.log(`SIGSTOP: ${misses} of ${ROUNDS} hung agents were still listed somewhere after 30 s (counted as 30 s)`)
  console.log(`\nidle gossip per node: ${result.idleBytesPerNodePerSecond.meshPayload} B/s of mesh protocol payload (probe + sync frames); ${result.idleBytesPerNodePerSecond.syscallReadWrite} B/s read+written by the process in all (includes gossipsub control, Noise and yamux framing, IPC)`)
  console.log(`whole run (${wholeRun.seconds} s: idle, saturation, rounds): ${wholeRun.meshPayload} B/s of mesh payload per node; ${wholeRun.syscallReadWrite} B/s read+written by the process`)
  const out = new URL(values.out, import.meta.url)
  await mkdir(new URL('.', out), { recursive: true })
  await writeFile(out, JSON.stringify(result, null, 2))
} finally {
  await stopAll(all)
}
