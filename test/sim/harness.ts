// A network simulation in one process: real gossip nodes (the mesh's adverts, validation, sync,
// probing, suspicion, topology and resolver code) with a network model: per-node link latency,
// message loss, partitions between groups, crashes, churn, dead bootstraps. Two networks:
// - `memory` (default): libp2p and gossipsub for real over @libp2p/memory. Connection set-up is
//   cheaper than in production (plaintext instead of Noise, by default), since no scenario here
//   tests encryption. One event loop carries every node, so about 250 nodes saturate it.
// - `model`: the same gossip node code on a virtual message layer (model/network.ts) and a
//   discrete-event clock, with measured per-hop CPU costs: ten thousand nodes fit.
// Scenarios say which parts they run for real.
import { generateKeyPairFromSeed } from '@libp2p/crypto/keys'
import { memory } from '@libp2p/memory'
import { plaintext } from '@libp2p/plaintext'
import { noise } from '@libp2p/noise'
import { createGossipNode } from '../../src/gossip/gossip-node.ts'
import type { GossipNode } from '../../src/gossip/gossip-node.ts'
import { createResolver } from '../../src/topology/resolver.ts'
import { parseGossipOptions } from '../../src/config.ts'
import type { GossipOptionsInput } from '../../src/config.ts'
import type { ReplicaChange } from '../../src/topology/replica.ts'
import type { Liveness } from '../../src/topology/advert.ts'
import { VirtualClock } from './virtual-clock.ts'
import { EventClock } from './model/event-clock.ts'
import { MODEL_PROFILES, ModelNetwork } from './model/network.ts'
import type { ModelOptions, ModelProfile } from './model/network.ts'
import { memoDecode, memoDigestHash } from './model/decode-memo.ts'
import { ProbeTrace } from './model/probe-trace.ts'

/** How the simulated network behaves. */
export interface SimOptions {
  /** Seeds every random choice the harness makes (loss, churn victims, partition groups). */
  seed?: number
  /** Latency added to every buffer a node sends, in ms (memory transport). */
  latencyMs?: number
  /** Fraction of inbound gossip messages and probe pings lost, 0 to 1. */
  loss?: number
  /** `plaintext` (default, cheap) or `noise` (as in production). */
  encryption?: 'plaintext' | 'noise'
  timing?: GossipOptionsInput['timing']
  minConnections?: number
  /**
   * Virtual time (see virtual-clock.ts): the mesh's timers run on a clock that advances only
   * when the process is idle, so large simulations measure protocol time, not CPU queueing.
   * Message delivery then takes no virtual time; `latencyMs` must be 0.
   */
  virtualTime?: boolean
  /**
   * `memory` (default): libp2p over @libp2p/memory; `model`: the virtual message layer, on
   * virtual time (the default when a `profile` is given).
   */
  network?: 'memory' | 'model'
  /** The model network's shape (`lan` or `wan`, see `MODEL_PROFILES`); `model` overrides its fields. */
  profile?: ModelProfile
  /** The model network's delays, loss, slow nodes, CPU costs and gossipsub degree (network `model` only). */
  model?: Partial<ModelOptions>
  /** Model network only: follow every probe and say why probes failed (`Simulation.trace`, probe-trace.ts). */
  trace?: boolean
}

/** One simulated member. */
export interface SimMember {
  name: string
  role: 'agent' | 'bootstrap'
  node: GossipNode
  capability?: string
  /** Running, and neither crashed, hung, left nor stopped. */
  up: boolean
}

/**
 * One change of how a member (the observer) sees another (the subject), from the observer's
 * replica: a suspicion, a death, a leave, or a suspect or dead member back alive.
 */
export interface LivenessEvent {
  /** When, in `now()` time. */
  at: number
  observer: string
  /** The subject's member name (its peer ID when it is not a member of this simulation). */
  subject: string
  before: Liveness | undefined
  after: Liveness
  /** The subject's incarnation the observer held. */
  incarnation: number
  /** For a suspicion: who raised it (the first suspecter's name), as the observer heard it. */
  raisedBy?: string
  /**
   * For a suspicion or a death: the subject was running (not crashed, hung, left or stopped) and
   * not cut off from the observer, so the verdict was false. See `Simulation.wrongfulDeaths`.
   */
  wrongful: boolean
}

/** A seeded PRNG (mulberry32): the same seed gives the same run of choices. */
export function seeded (seed: number): () => number {
  let a = seed >>> 0
  return () => {
    a = (a + 0x6d2b79f5) >>> 0
    let t = a
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}

let simCount = 0

/**
 * Awaits `p` with a referenced timer running. A node's own timers are unref'd and the memory
 * network holds no socket, so a stop waiting on one of those timers could let the event loop
 * empty and the test process end mid-test ("test unfinished", seen once in CI under load); held,
 * such a stop finishes, or the test times out and says where.
 */
async function held<T> (p: Promise<T>): Promise<T> {
  const keep = setInterval(() => {}, 1_000)
  try {
    return await p
  } finally {
    clearInterval(keep)
  }
}

/** A simulated mesh. Create members, break the network, measure, then `stop()`. */
export class Simulation {
  readonly rng: () => number
  readonly #keyRng: () => number
  readonly members = new Map<string, SimMember>()
  readonly mesh: string
  loss: number
  readonly #o: SimOptions
  readonly #clock: VirtualClock | EventClock | undefined
  /** The model network, when the simulation runs on it. */
  readonly model: ModelNetwork | undefined
  /** Why probes failed, when `trace` is on. */
  readonly trace: ProbeTrace | undefined
  readonly #decode = memoDecode()
  readonly #digestHash = memoDigestHash()
  #seq = 0
  #seeding = false
  readonly #byPeer = new Map<string, SimMember>()
  /** Peer IDs of members in a blackout (see `blackout`). */
  readonly #blackedOut = new Set<string>()
  /** Every blackout, with when it began and (once over) ended. */
  readonly #blackouts: Array<{ id: string, from: number, to?: number }> = []
  /** Every partition made, with when it began and (once healed) ended; peer IDs on each side. */
  readonly #partitions: Array<{ a: Set<string>, b: Set<string>, from: number, to?: number }> = []
  /** Suspicions, deaths, leaves and returns, in order, over the whole run. */
  readonly #history: LivenessEvent[] = []
  /** When each observer began to suspect each subject (`observer\0subject` peer IDs), while it does. */
  readonly #suspectedAt = new Map<string, number>()
  /**
   * How far before a suspicion a cut may lie and still justify it: the longest a probe round takes
   * before it suspects at full health (a direct probe, then an indirect one through a helper, each
   * leg at the timeout cap). A probe that began while the link was cut may end after the heal.
   */
  readonly #graceMs: number
  // Kept by every replica's change events, so queries cost O(N), not O(N^2), at ten thousand nodes.
  /** Running observers (other than the subject) that list each peer as up. */
  readonly #listedBy = new Map<string, number>()
  /** Watched capabilities: for each, how many up providers each observer lists, and when each agent first listed one. */
  readonly #watched = new Map<string, { counts: Map<SimMember, number>, reached: Map<SimMember, number> }>()

  constructor (options: SimOptions = {}) {
    this.#o = options
    if (options.virtualTime === true && (options.latencyMs ?? 0) > 0) throw new Error('simulation: virtual time needs latencyMs 0')
    this.rng = seeded(options.seed ?? 1)
    this.#keyRng = seeded((options.seed ?? 1) + 104_729)
    const network = options.network ?? (options.profile === undefined ? 'memory' : 'model')
    if (network === 'memory' && options.profile !== undefined) throw new Error('simulation: a profile needs the model network')
    if (network === 'model') {
      const clock = new EventClock()
      this.#clock = clock
      const profile = options.profile === undefined ? {} : MODEL_PROFILES[options.profile]
      this.model = new ModelNetwork(clock, seeded((options.seed ?? 1) + 7919), { ...profile, ...options.model })
    } else {
      this.#clock = options.virtualTime === true ? new VirtualClock() : undefined
      this.model = undefined
    }
    if (options.trace === true) {
      if (this.model === undefined) throw new Error('simulation: trace needs the model network')
      this.trace = new ProbeTrace((id) => this.#byPeer.get(id)?.up === true)
      this.model.tap = this.trace
    } else {
      this.trace = undefined
    }
    this.loss = options.loss ?? 0
    this.mesh = `sim-${process.pid}-${simCount++}`
    this.#graceMs = 3 * parseGossipOptions({ name: 'grace', timing: options.timing ?? {} }, {}).timing.maxProbeTimeoutMs
  }

  /** Members that are running. */
  up (role?: SimMember['role']): SimMember[] {
    return [...this.members.values()].filter((m) => m.up && (role === undefined || m.role === role))
  }

  /** Bootstrap addresses of running bootstraps (the doors). */
  doors (): string[] {
    return this.up('bootstrap').flatMap((m) => m.node.addrs.slice(0, 1))
  }

  /** The doors, or with none running (a seeded mesh), one running agent's address. */
  #entrances (): string[] {
    const doors = this.doors()
    if (doors.length > 0) return doors
    const agents = this.up('agent')
    return agents.length === 0 ? [] : agents[Math.floor(this.rng() * agents.length)].node.addrs.slice(0, 1)
  }

  /** Starts a bootstrap. */
  async bootstrap (): Promise<SimMember> {
    const [m] = await this.#start([{ name: `boot-${this.#seq++}`, role: 'bootstrap' }], this.doors())
    return m
  }

  /**
   * Starts `count` agents, `concurrency` at a time, joining through `via` (default: the doors).
   * Agent i offers capability `cap-<seq>` unless `capability` says otherwise.
   */
  async add (count: number, options: { concurrency?: number, via?: string[], capability?: (name: string) => string } = {}): Promise<SimMember[]> {
    const specs = Array.from({ length: count }, () => {
      const name = `agent-${this.#seq++}`
      return { name, role: 'agent' as const, capability: options.capability?.(name) ?? `cap-${name}` }
    })
    const out: SimMember[] = []
    const batch = options.concurrency ?? 25
    for (let i = 0; i < specs.length; i += batch) {
      out.push(...await this.#start(specs.slice(i, i + batch), options.via ?? this.#entrances()))
    }
    return out
  }

  async #start (specs: Array<{ name: string, role: SimMember['role'], capability?: string }>, via: string[]): Promise<SimMember[]> {
    const model = this.model
    // Keys from the seed: peer IDs order digest buckets and sync pages, so a model run repeats exactly.
    const keys = await Promise.all(specs.map(async () => generateKeyPairFromSeed('Ed25519', Uint8Array.from({ length: 32 }, () => Math.floor(this.#keyRng() * 256)))))
    return await Promise.all(specs.map(async ({ name, role, capability }, i) => {
      const node = createGossipNode({
        name,
        mesh: this.mesh,
        role,
        ephemeralKey: true,
        colocated: true,
        listen: model === undefined ? [`/memory/${this.mesh}-${name}`] : [],
        bootstrap: via,
        ...(this.#o.minConnections === undefined ? {} : { minConnections: this.#o.minConnections }),
        ...(this.#o.timing === undefined ? {} : { timing: this.#o.timing }),
        advert: { tools: capability === undefined ? [] : [{ name: 'tool', capability, version: '1.0.0', tags: [] }] },
      }, {
        ...(model === undefined
          ? { transports: [memory({ latency: this.#o.latencyMs ?? 0 })], connectionEncrypters: [this.#o.encryption === 'noise' ? noise() : plaintext()] }
          : { ...model.nodeSeam(), random: seeded(Math.floor(this.rng() * 2 ** 32)), decode: this.#decode, digestHash: this.#digestHash }),
        privateKey: keys[i],
        lose: (kind, from) => this.#lose(node.peerId, kind, from),
        ...(this.#clock === undefined || model !== undefined ? {} : { clock: this.#clock }),
      })
      const m: SimMember = { name, role, node, up: false, ...(capability === undefined ? {} : { capability }) }
      this.members.set(name, m)
      await node.start()
      m.up = true
      this.#byPeer.set(node.peerId, m)
      if (this.trace !== undefined) this.trace.watch(node, model!.node(node.peerId)!)
      node.replica.onChange((c) => { this.#track(m, c) })
      return m
    }))
  }

  /**
   * Model network only: starts `count` agents as a mesh that has already converged (every replica
   * holds every advert, merged by the replica's own code; each node connected to `minConnections`
   * random others), then lets `settleMs` pass so the gossip mesh and probing settle. Joins at this
   * scale would spend the run on N^2 snapshot work, and a burst of handshakes.
   */
  async seedConverged (count: number, settleMs = 5_000): Promise<SimMember[]> {
    if (this.model === undefined) throw new Error('simulation: seedConverged needs the model network')
    const agents = await this.add(count, { via: [], concurrency: 500 })
    const adverts = agents.map((m) => ({ advert: m.node.advert!, envelope: m.node.replica.get(m.node.peerId)!.envelope }))
    for (const a of adverts) this.model.preseen(a.envelope)
    // Connected as upkeep leaves a settled mesh: each node to `minConnections` random others.
    const k = Math.min(this.#o.minConnections ?? 6, agents.length - 1)
    for (const m of agents) {
      for (let i = 0; i < k; i++) {
        const other = agents[Math.floor(this.rng() * agents.length)]
        if (other !== m) this.model.connectNow(m.node.peerId, other.node.peerId)
      }
    }
    // Tracked in bulk: every agent is listed up by every other one.
    this.#seeding = true
    try {
      for (const m of agents) {
        const replica = m.node.replica
        for (const a of adverts) if (a.advert.peerId !== m.node.peerId) replica.applyAdvert(a.advert, a.envelope)
      }
    } finally {
      this.#seeding = false
    }
    for (const m of agents) this.#listedBy.set(m.node.peerId, (this.#listedBy.get(m.node.peerId) ?? 0) + agents.length - 1)
    await this.sleep(settleMs)
    return agents
  }

  /** Tracks `capability` from now on: `resolvable` then costs O(N). Call before it appears. */
  watch (capability: string): void {
    if (!this.#watched.has(capability)) this.#watched.set(capability, { counts: new Map(), reached: new Map() })
  }

  /** When each agent (other than the providers) first listed a provider of a watched capability, in `now()` time, sorted. */
  reachedAt (capability: string): number[] {
    const w = this.#watched.get(capability)
    return w === undefined ? [] : [...w.reached.values()].sort((a, b) => a - b)
  }

  #track (observer: SimMember, c: ReplicaChange): void {
    if (this.#seeding || !observer.up || c.peerId === observer.node.peerId) return
    const wasUp = c.before === 'alive' || c.before === 'suspect'
    const isUp = c.after === 'alive' || c.after === 'suspect'
    if (wasUp !== isUp) this.#listedBy.set(c.peerId, (this.#listedBy.get(c.peerId) ?? 0) + (isUp ? 1 : -1))
    if (c.before !== undefined && c.before !== c.after) this.#record(observer, c)
    if (this.#watched.size === 0 || wasUp === isUp) return
    for (const tool of c.advert.tools) {
      const w = this.#watched.get(tool.capability)
      if (w === undefined) continue
      w.counts.set(observer, (w.counts.get(observer) ?? 0) + (isUp ? 1 : -1))
      if (isUp && observer.role === 'agent' && !w.reached.has(observer)) w.reached.set(observer, this.now())
    }
  }

  /**
   * Keeps one liveness change in the history, judged at the moment it happens. A suspicion or a
   * death is wrongful when its subject is running (`up`: not crashed, hung, left or stopped) and
   * was not cut off from the observer by a partition at any time from `graceMs` before the
   * observer began to suspect it until now. A member cut off from the observer is rightly
   * suspected and declared dead by it, and a probe begun during a partition may end after the heal.
   */
  #record (observer: SimMember, c: ReplicaChange): void {
    const at = this.now()
    const key = `${observer.node.peerId}\0${c.peerId}`
    const subject = this.#byPeer.get(c.peerId)
    let since = at
    if (c.after === 'suspect') this.#suspectedAt.set(key, at)
    else {
      since = this.#suspectedAt.get(key) ?? at
      this.#suspectedAt.delete(key)
    }
    const judged = c.after === 'suspect' || c.after === 'dead'
    const wrongful = judged && subject?.up === true && !this.#cutBetween(observer.node.peerId, c.peerId, since - this.#graceMs) &&
      !this.#blind(observer.node.peerId, since - this.#graceMs)
    const first = c.after === 'suspect' ? observer.node.replica.get(c.peerId)?.suspecters?.values().next().value : undefined
    this.#history.push({
      at,
      observer: observer.name,
      subject: subject?.name ?? c.peerId,
      before: c.before,
      after: c.after,
      incarnation: c.advert.incarnation,
      ...(first === undefined ? {} : { raisedBy: this.#byPeer.get(first)?.name ?? first }),
      wrongful,
    })
  }

  /**
   * True when the observer was in a blackout at any time from `since` until now: it heard no
   * answer from anyone, so its own verdicts were as right as those of a node cut off by a partition.
   */
  #blind (observer: string, since: number): boolean {
    return this.#blackouts.some((b) => b.id === observer && (b.to === undefined || b.to >= since))
  }

  /** True when a partition separated the two peers at any time from `since` until now. */
  #cutBetween (x: string, y: string, since: number): boolean {
    return this.#partitions.some((p) => (p.to === undefined || p.to >= since) &&
      ((p.a.has(x) && p.b.has(y)) || (p.b.has(x) && p.a.has(y))))
  }

  /** Every suspicion, death, leave and return any running member saw, in order, over the whole run. */
  history (): readonly LivenessEvent[] {
    return this.#history
  }

  /**
   * Every time a running member declared a healthy member dead, over the whole run: the subject
   * was running, not hung, and not cut off from the observer (see `#record`). A false death that
   * was later refuted counts too, although the subject is alive again at the end.
   */
  wrongfulDeaths (): LivenessEvent[] {
    return this.#history.filter((e) => e.wrongful && e.after === 'dead')
  }

  /** Every time a running member began to suspect a healthy member (each observer counts), over the whole run. */
  wrongfulSuspicions (): LivenessEvent[] {
    return this.#history.filter((e) => e.wrongful && e.after === 'suspect')
  }

  /** A stopped member's replica no longer counts. */
  #untrack (m: SimMember): void {
    for (const e of m.node.replica.members()) {
      const id = e.advert.peerId
      if (id === m.node.peerId) continue
      if (e.liveness === 'alive' || e.liveness === 'suspect') this.#listedBy.set(id, (this.#listedBy.get(id) ?? 0) - 1)
    }
    for (const w of this.#watched.values()) w.counts.delete(m)
  }

  /** Kills a member without a goodbye: its peers see its connections close, as after kill -9. */
  async crash (name: string): Promise<void> {
    const m = this.#get(name)
    m.up = false
    this.#untrack(m)
    await held(m.node.stop({ leave: false }))
  }

  /**
   * Model network only: the member hangs, as after SIGSTOP. Its connections stay open, but nothing
   * reaches it or leaves it, so only probes can tell. It counts as down from now on.
   */
  hang (name: string): void {
    const m = this.#get(name)
    const net = this.model?.node(m.node.peerId)
    if (net === undefined) throw new Error('simulation: hang needs the model network')
    net.frozen = true
    m.up = false
    this.#untrack(m)
  }

  /** Stops a member gracefully (signed leave). */
  async leave (name: string): Promise<void> {
    const m = this.#get(name)
    m.up = false
    this.#untrack(m)
    await held(m.node.stop())
  }

  /**
   * Fault injection through the nodes' `lose` seam: while on, every probe ping to or from the
   * member is lost (it answers none, and none of its peers answers it), and so are every gossip
   * message it receives and its peers' views of it in syncs (it is not told it is suspected).
   * Its connections, the rest of sync, and its own gossip go on. To its peers it looks hung,
   * yet it runs and nothing cut it off, so any death they declare meanwhile is wrongful. Once off,
   * it learns from its peers' answers that it was suspected or declared dead, and refutes.
   */
  blackout (name: string, on: boolean): void {
    const id = this.#get(name).node.peerId
    if (on) {
      this.#blackedOut.add(id)
      this.#blackouts.push({ id, from: this.now() })
    } else {
      this.#blackedOut.delete(id)
      const now = this.now()
      for (const b of this.#blackouts) if (b.id === id) b.to ??= now
    }
  }

  /** The `lose` seam of the node `self`: random loss (`loss`), and blackouts. */
  #lose (self: string, kind: 'gossip' | 'probe' | 'view', from: string): boolean {
    if (this.#blackedOut.size > 0 && (this.#blackedOut.has(self) || (kind === 'probe' && this.#blackedOut.has(from)))) return true
    if (kind === 'view') return false // views are cut by blackouts only
    return this.loss > 0 && this.rng() < this.loss
  }

  /** Cuts every link between the two groups (both directions), as a firewall would. */
  async partition (a: SimMember[], b: SimMember[]): Promise<void> {
    const idsA = a.map((m) => m.node.peerId)
    const idsB = b.map((m) => m.node.peerId)
    this.#partitions.push({ a: new Set(idsA), b: new Set(idsB), from: this.now() })
    await Promise.all([
      ...a.map(async (m) => { await m.node.deny(idsB) }),
      ...b.map(async (m) => { await m.node.deny(idsA) }),
    ])
  }

  /** Restores every cut link. */
  heal (): void {
    for (const m of this.up()) m.node.allow()
    const now = this.now()
    for (const p of this.#partitions) p.to ??= now
  }

  /** Fraction of running agents whose replica resolves `capability` (0 to 1). */
  resolvable (capability: string): number {
    const agents = this.up('agent')
    if (agents.length === 0) return 0
    const counts = this.#watched.get(capability)?.counts
    if (counts !== undefined) {
      let n = 0
      for (const m of agents) if (m.capability === capability || (counts.get(m) ?? 0) > 0) n++
      return n / agents.length
    }
    const resolver = createResolver()
    let n = 0
    for (const m of agents) {
      if (m.capability === capability) { n++; continue }
      if (resolver.resolve(m.node.replica.members(), capability).selected !== null) n++
    }
    return n / agents.length
  }

  /** Running members whose replica lists `peerId` as alive or suspect. */
  listing (peerId: string): number {
    return this.#listedBy.get(peerId) ?? 0
  }

  /** True when every running member lists exactly the running members (and itself). */
  converged (): boolean {
    const up = this.up()
    for (const m of this.members.values()) if (!m.up && this.listing(m.node.peerId) > 0) return false
    return up.every((o) => o.node.replica.upCount === up.length)
  }

  /** Now, in ms: virtual time when the simulation runs on it, else the real monotonic clock. */
  now (): number {
    return this.#clock?.now() ?? performance.now()
  }

  /** Lets `ms` pass (virtual or real). */
  async sleep (ms: number): Promise<void> {
    if (this.#clock !== undefined) await this.#clock.run(ms)
    else await new Promise((resolve) => setTimeout(resolve, ms))
  }

  /** Polls `check` until true; returns the ms it took. Throws after `limitMs` (a bound, not a target). */
  async until (what: string, check: () => boolean, limitMs = 60_000, everyMs = 20): Promise<number> {
    const start = this.now()
    while (!check()) {
      if (this.now() - start > limitMs) throw new Error(`simulation: timed out after ${limitMs} ms waiting for ${what}`)
      await this.sleep(this.#clock === undefined ? everyMs : Math.min(everyMs, 10))
    }
    return this.now() - start
  }

  /** Stops every member. */
  async stop (): Promise<void> {
    await held(Promise.all(this.up().map(async (m) => { m.up = false; this.#untrack(m); await m.node.stop({ leave: false }) })))
  }

  #get (name: string): SimMember {
    const m = this.members.get(name)
    if (m === undefined) throw new Error(`simulation: no member ${name}`)
    return m
  }
}

/** What a scenario reports: named measurements (ms, counts, bytes). */
export type Measurements = Record<string, number>

/** A scenario: code that drives a simulation and reports what it measured. */
export interface Scenario {
  name: string
  /** Which parts run for real, said once per scenario. */
  real: string
  run: (sim: Simulation, size: number) => Promise<Measurements>
}

/** Declares a scenario (`scenario('partition heals', 'gossip, sync, probing', async (sim, n) => ...)`). */
export function scenario (name: string, real: string, run: Scenario['run']): Scenario {
  return { name, real, run }
}
