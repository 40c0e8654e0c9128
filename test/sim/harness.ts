// A network simulation with the real stack in one process: real gossip nodes (libp2p, gossipsub,
// the mesh's sync, probing, topology and resolver code) over @libp2p/memory, with a network model:
// per-node link latency, message loss, partitions between groups, crashes, churn, dead bootstraps.
// Connection set-up is cheaper than in production (plaintext instead of Noise, by default), since
// no scenario here tests encryption; scenarios say which parts they run for real.
import { memory } from '@libp2p/memory'
import { plaintext } from '@libp2p/plaintext'
import { noise } from '@libp2p/noise'
import { createGossipNode } from '../../src/gossip/gossip-node.ts'
import type { GossipNode } from '../../src/gossip/gossip-node.ts'
import { createResolver } from '../../src/topology/resolver.ts'
import type { GossipOptionsInput } from '../../src/config.ts'
import { VirtualClock } from './virtual-clock.ts'

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
}

/** One simulated member. */
export interface SimMember {
  name: string
  role: 'agent' | 'bootstrap'
  node: GossipNode
  capability?: string
  up: boolean
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

/** A simulated mesh. Create members, break the network, measure, then `stop()`. */
export class Simulation {
  readonly rng: () => number
  readonly members = new Map<string, SimMember>()
  readonly mesh: string
  loss: number
  readonly #o: SimOptions
  readonly #cut = new Map<string, Set<string>>()
  readonly #clock: VirtualClock | undefined
  #seq = 0

  constructor (options: SimOptions = {}) {
    this.#o = options
    if (options.virtualTime === true && (options.latencyMs ?? 0) > 0) throw new Error('simulation: virtual time needs latencyMs 0')
    this.#clock = options.virtualTime === true ? new VirtualClock() : undefined
    this.rng = seeded(options.seed ?? 1)
    this.loss = options.loss ?? 0
    this.mesh = `sim-${process.pid}-${simCount++}`
  }

  /** Members that are running. */
  up (role?: SimMember['role']): SimMember[] {
    return [...this.members.values()].filter((m) => m.up && (role === undefined || m.role === role))
  }

  /** Bootstrap addresses of running bootstraps (the doors). */
  doors (): string[] {
    return this.up('bootstrap').flatMap((m) => m.node.addrs.slice(0, 1))
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
      out.push(...await this.#start(specs.slice(i, i + batch), options.via ?? this.doors()))
    }
    return out
  }

  async #start (specs: Array<{ name: string, role: SimMember['role'], capability?: string }>, via: string[]): Promise<SimMember[]> {
    return await Promise.all(specs.map(async ({ name, role, capability }) => {
      const node = createGossipNode({
        name,
        mesh: this.mesh,
        role,
        ephemeralKey: true,
        colocated: true,
        listen: [`/memory/${this.mesh}-${name}`],
        bootstrap: via,
        ...(this.#o.minConnections === undefined ? {} : { minConnections: this.#o.minConnections }),
        ...(this.#o.timing === undefined ? {} : { timing: this.#o.timing }),
        advert: { tools: capability === undefined ? [] : [{ name: 'tool', capability, version: '1.0.0', tags: [] }] },
      }, {
        transports: [memory({ latency: this.#o.latencyMs ?? 0 })],
        connectionEncrypters: [this.#o.encryption === 'noise' ? noise() : plaintext()],
        lose: () => this.loss > 0 && this.rng() < this.loss,
        ...(this.#clock === undefined ? {} : { clock: this.#clock }),
      })
      const m: SimMember = { name, role, node, up: false, ...(capability === undefined ? {} : { capability }) }
      this.members.set(name, m)
      await node.start()
      m.up = true
      return m
    }))
  }

  /** Kills a member without a goodbye: its peers see its connections close, as after kill -9. */
  async crash (name: string): Promise<void> {
    const m = this.#get(name)
    m.up = false
    await m.node.stop({ leave: false })
  }

  /** Stops a member gracefully (signed leave). */
  async leave (name: string): Promise<void> {
    const m = this.#get(name)
    m.up = false
    await m.node.stop()
  }

  /** Cuts every link between the two groups (both directions), as a firewall would. */
  async partition (a: SimMember[], b: SimMember[]): Promise<void> {
    const idsA = a.map((m) => m.node.peerId)
    const idsB = b.map((m) => m.node.peerId)
    await Promise.all([
      ...a.map(async (m) => { this.#cutOff(m, idsB); await m.node.deny(idsB) }),
      ...b.map(async (m) => { this.#cutOff(m, idsA); await m.node.deny(idsA) }),
    ])
  }

  /** Restores every cut link. */
  heal (): void {
    for (const m of this.up()) m.node.allow()
    this.#cut.clear()
  }

  #cutOff (m: SimMember, ids: string[]): void {
    const set = this.#cut.get(m.name) ?? new Set<string>()
    for (const id of ids) set.add(id)
    this.#cut.set(m.name, set)
  }

  /** Fraction of running agents whose replica resolves `capability` (0 to 1). */
  resolvable (capability: string): number {
    const agents = this.up('agent')
    if (agents.length === 0) return 0
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
    let n = 0
    for (const m of this.up()) {
      if (m.node.peerId === peerId) continue
      const l = m.node.replica.get(peerId)?.liveness
      if (l === 'alive' || l === 'suspect') n++
    }
    return n
  }

  /** Pairs (observer, subject) of running, connected members where the observer holds the subject dead. */
  wronglyDead (): number {
    const up = this.up()
    let n = 0
    for (const o of up) {
      const cut = this.#cut.get(o.name)
      for (const s of up) {
        if (s === o || cut?.has(s.node.peerId) === true) continue
        const l = o.node.replica.get(s.node.peerId)?.liveness
        if (l === 'dead' || l === 'left') n++
      }
    }
    return n
  }

  /** True when every running member lists exactly the running members (and itself). */
  converged (): boolean {
    const up = this.up()
    const ids = new Set(up.map((m) => m.node.peerId))
    for (const o of up) {
      let alive = 0
      for (const e of o.node.replica.members()) {
        const live = e.liveness === 'alive' || e.liveness === 'suspect'
        if (live && !ids.has(e.advert.peerId)) return false
        if (live) alive++
      }
      if (alive < ids.size) return false
    }
    return true
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
    await Promise.all(this.up().map(async (m) => { m.up = false; await m.node.stop({ leave: false }) }))
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
