import { logger } from '../telemetry/log.ts'
import type { Logger } from '../telemetry/log.ts'
import type { PrivateKey } from '@libp2p/interface'
import type { GossipOptions } from '../config.ts'
import { isMeshError } from '../errors.ts'
import { ADVERT_SCHEMA_VERSION } from '../topology/advert.ts'
import type { Replica } from '../topology/replica.ts'
import type { Adverts } from './adverts.ts'
import type { Awareness } from './awareness.ts'
import { encodeMessage } from './codec.ts'
import type { FrameStream, MeshNet } from './net.ts'
import type { Peers } from './peers.ts'
import { ProbeChannel, serveProbe } from './probe.ts'
import { Quota } from './quota.ts'
import type { Answer, ProbeContext } from './probe.ts'
import { timeoutLag } from './scope.ts'
import type { TaskScope } from './scope.ts'
import type { GossipStats } from './stats.ts'

const log = logger('mesh:gossip')

/**
 * How long a new neighbour counts as able to confirm before it has probed: a neighbour probes
 * each of its own d neighbours every d/6 s at most (`maxProbesPerTick`), slower while unhealthy.
 */
const DEGREE_GRACE_MS = 10_000

/**
 * How one probe ended: acknowledged, not acknowledged, decided too late to mean anything, or not
 * sent (the member is over its dial quota).
 */
type ProbeOutcome = 'ack' | 'nack' | 'late' | 'skipped'

/** What the prober is built from. */
export interface ProberInit {
  options: GossipOptions
  key: PrivateKey
  net: MeshNet
  replica: Replica
  peers: Peers
  scope: TaskScope
  awareness: Awareness
  adverts: Adverts
  stats: GossipStats
  /** Members probe; observers and bootstraps of no role answer probes but send none. */
  member: boolean
  /** Fault injection (simulations): true loses this inbound ping. */
  lose?: (from: string) => boolean
}

/**
 * SWIM failure detection: probes neighbours round robin over long-lived probe streams, asks
 * others to probe a member that missed a direct probe, and raises a signed suspicion when they
 * cannot reach it either. Answers other members' probes.
 */
export class Prober {
  /** Its lines carry the agent's name: several nodes may share a process. */
  readonly #log: Logger
  readonly #i: ProberInit
  readonly #inflight = new Set<string>()
  #order: string[] = []
  /** Every neighbour already placed in this round of `#order` (probed or still queued). */
  #placed = new Set<string>()
  readonly #channels = new Map<string, Promise<ProbeChannel>>()
  /** Probes in their indirect phase, by target: called when the target's late ack arrives. */
  readonly #awaitingLateAck = new Map<string, () => void>()
  readonly #ctx: ProbeContext
  /** Open inbound probe streams by neighbour: the neighbours that probe this node. */
  readonly #probedBy = new Map<string, number>()
  /** When each current neighbour was first seen connected (see `#degree`). */
  readonly #metAt = new Map<string, number>()

  constructor (init: ProberInit) {
    this.#log = log.child({ agent: init.options.name })
    this.#i = init
    const { peers, adverts, awareness, stats } = init
    const perSecond = init.options.quota.probeFramesPerSecond
    const quota = new Quota({ clock: init.scope.clock, perMinute: perSecond * 60, burst: perSecond * 2 })
    this.#ctx = {
      viewOf: (p) => peers.viewOf(p),
      onView: (v) => { adverts.onView(v) },
      // Counted at each ping and ack, not once per tick: a starting agent gains neighbours within
      // a tick, so a count up to 500 ms old understates it and its suspicions expect too few
      // confirmations (with it, a starting agent was declared dead in 1 of 10 benchmark runs).
      degree: () => this.#degree(),
      onDegree: (d, from) => { awareness.recordDegree(from, d) },
      onLateAck: (from) => { this.#awaitingLateAck.get(from)?.() },
      // A helper probes over a connection it already holds and never dials for another member: a
      // dial costs a handshake at both ends, and on a loaded host those handshakes delayed more acks
      // and fed a storm of false suspicions (the model simulation, BENCHMARKS.md). Not connected: a nack at once.
      probeFor: async (target, options) => {
        if (!peers.connectedTo(target)) return 'nack'
        const outcome = await this.#direct(target, awareness.probeTimeout(target), options)
        return outcome === 'late' || outcome === 'skipped' ? 'none' : outcome // cannot judge: no answer, rather than a false nack
      },
      lose: (from) => init.lose?.(from) === true,
      bytes: stats.probeBytes,
      allow: (from) => {
        if (quota.take(from)) return true
        stats.refused.probe++
        return false
      },
    }
  }

  /**
   * One protocol period's share: round robin over a shuffled list of neighbours (SWIM), enough
   * per tick that each is probed once per `probePeriodMs`; fewer while this node is itself
   * unhealthy (Lifeguard).
   */
  tick (): void {
    if (!this.#i.member) return
    const neighbours = this.#i.peers.neighbours()
    // A neighbour that connected during this round joins it at a random place (as memberlist
    // does), rather than waiting for the next shuffle: a just-joined agent that hangs is probed
    // within one round of each neighbour, not two. Random, so its neighbours do not all probe it at once.
    for (const id of neighbours) {
      if (this.#placed.has(id)) continue
      this.#placed.add(id)
      this.#order.splice(Math.floor(this.#i.scope.random() * (this.#order.length + 1)), 0, id)
    }
    let count = this.#i.awareness.probesPerTick(neighbours.length)
    let refilled = false
    while (count > 0) {
      if (this.#order.length === 0) {
        if (refilled) return
        this.#order = this.#i.scope.shuffle(neighbours)
        this.#placed = new Set(neighbours)
        refilled = true
      }
      const id = this.#order.pop()!
      if (this.#i.peers.isUp(id) && id !== this.#i.peers.selfId) { void this.probe(id); count-- }
    }
  }

  /**
   * Probes a member directly, then through others; suspects it when nobody reaches it. A probe
   * whose timeout this node decided late, behind its own backlog, proves nothing about the peer:
   * it raises our own health (longer timeouts, fewer probes) instead of accusing anyone.
   */
  async probe (target: string): Promise<void> {
    const { scope, peers, awareness, stats, options } = this.#i
    if (!this.#i.member || !scope.running || this.#inflight.has(target) || target === peers.selfId) return
    this.#inflight.add(target)
    try {
      stats.probes++
      const direct = await this.#direct(target, awareness.probeTimeout(target))
      if (direct === 'ack') {
        awareness.adjust(-1)
        return
      }
      if (direct === 'skipped') return // not even tried: this says nothing about the member
      if (direct === 'late') {
        stats.probesLate++
        awareness.adjust(1)
        return
      }
      const helpers = scope.shuffle(peers.neighbours().filter((p) => p !== target)).slice(0, options.timing.indirectProbes)
      // The direct ping's ack still counts while helpers are asked, and on a slow link for a
      // while longer (`lateAckWindow`), as memberlist keeps it until the end of the probe period.
      const lateAck = new Promise<'late-ack'>((resolve) => { this.#awaitingLateAck.set(target, () => { resolve('late-ack') }) })
      const windowMs = awareness.lateAckWindow(target)
      const windowOver = windowMs === 0 ? undefined : scope.sleep(windowMs)
      const indirect = Promise.all(helpers.map(async (h) => this.#indirect(h, target, awareness.indirectTimeout(target, h))))
      const answers = await Promise.race([lateAck, indirect.then(async (a) => { if (!a.includes('ack')) await windowOver; return a })])
        .finally(() => { this.#awaitingLateAck.delete(target) })
      if (answers === 'late-ack') {
        stats.lateAcks++
        awareness.adjust(-1)
        return
      }
      if (answers.includes('ack')) return
      if (answers.includes('late')) {
        stats.probesLate++
        awareness.adjust(1)
        return
      }
      // Helpers that answered nothing (not even a nack) suggest the slow one is us, not the target.
      if (helpers.length > 0 && answers.every((a) => a === 'none')) awareness.adjust(1)
      if (scope.running && peers.isUp(target)) {
        stats.probeFailures++
        await this.#suspect(target)
      }
    } finally {
      this.#inflight.delete(target)
    }
  }

  /**
   * The last connection to a peer closed. Its neighbours probe it spread over 200 ms: when a crash
   * closes a member's sockets, they do not all probe and suspect it in the same instant; the first
   * voices arrive before the rest speak.
   */
  onDisconnected (peerId: string): void {
    this.#dropChannel(peerId)
    const { scope, peers } = this.#i
    if (scope.running && this.#i.member && peers.isUp(peerId)) scope.later(25 + Math.floor(scope.random() * 200), () => { void this.probe(peerId) })
  }

  /**
   * A peer holds `peerId` dead at `incarnation` while we hold it up. Not trusted (a liar could
   * evict anyone): probe it; only a failed probe makes it suspect.
   */
  onDeadHint (peerId: string, incarnation: number): void {
    const e = this.#i.replica.get(peerId)
    if (e !== undefined && this.#i.peers.isUp(peerId) && e.advert.incarnation <= incarnation) void this.probe(peerId)
  }

  /**
   * A suspicion of `subject` arrived. Confirm independently: the suspect's neighbours probe it;
   * only a failed probe adds a voice. Non-neighbours do not dial it: each dial costs a Noise
   * handshake on both ends and leaves a connection to probe for good, and on a loaded host
   * (start-up bursts) that amplified false suspicions into a lasting storm, even when sampled and
   * budgeted. The cost: a member killed before it has connected to its neighbours (within about
   * 200 ms of joining) is confirmed by its door alone and waits the full suspicion timeout.
   */
  onSuspicion (subject: string): void {
    const e = this.#i.replica.get(subject)
    if (e?.suspecters !== undefined && !e.suspecters.has(this.#i.peers.selfId) &&
      e.suspecters.size <= e.expectedConfirmations! && this.#i.peers.connectedTo(subject)) {
      void this.probe(subject)
    }
  }

  /** Serves a neighbour's long-lived probe stream until it closes it, the connection dies, or this node stops. */
  async onStream (stream: FrameStream, from: string): Promise<void> {
    this.#probedBy.set(from, (this.#probedBy.get(from) ?? 0) + 1)
    try {
      await serveProbe(stream, from, this.#ctx, { signal: this.#i.scope.signal })
        .then(async () => stream.close().catch(() => {}), (err: Error) => { stream.abort(err) })
    } finally {
      const n = this.#probedBy.get(from)! - 1
      if (n === 0) this.#probedBy.delete(from)
      else this.#probedBy.set(from, n)
    }
  }

  /**
   * The neighbours that can confirm a suspicion of this node, as told in pings and acks: those
   * that probe it (they hold a probe stream to it), and those connected for less than
   * `DEGREE_GRACE_MS`, which may not have probed yet. Counting every connection overclaimed: a
   * hung agent told of 4 neighbours of which 3 probed it, and every replica waited Lifeguard's
   * timeout for a confirmation that could not come (3.38 s in 1 of 20 benchmark runs).
   */
  #degree (): number {
    const now = this.#i.scope.clock.now()
    const neighbours = this.#i.peers.neighbours()
    const current = new Set(neighbours)
    for (const id of this.#metAt.keys()) if (!current.has(id)) this.#metAt.delete(id)
    let d = 0
    for (const id of neighbours) {
      let met = this.#metAt.get(id)
      if (met === undefined) { met = now; this.#metAt.set(id, met) }
      if (this.#probedBy.has(id) || now - met < DEGREE_GRACE_MS) d++
    }
    return d
  }

  /** Closes every probe stream (the node is stopping). */
  stop (): void {
    for (const id of [...this.#channels.keys()]) this.#dropChannel(id)
  }

  /** The long-lived probe stream to a neighbour, opened on first use and shared by concurrent probes. */
  async #channel (peerId: string, signal: AbortSignal): Promise<ProbeChannel> {
    const existing = this.#channels.get(peerId)
    if (existing !== undefined) {
      const ch = await existing.catch(() => undefined)
      if (ch?.open === true) return ch
      if (this.#channels.get(peerId) === existing) this.#channels.delete(peerId)
    }
    const opening = this.#i.peers.open(peerId, 'probe', signal)
      .then((stream) => new ProbeChannel(stream, peerId, this.#ctx))
    this.#channels.set(peerId, opening)
    opening.catch(() => { if (this.#channels.get(peerId) === opening) this.#channels.delete(peerId) })
    return opening
  }

  #dropChannel (peerId: string): void {
    const ch = this.#channels.get(peerId)
    this.#channels.delete(peerId)
    void ch?.then((c) => { c.close() }, () => {})
  }

  /** One ping: `ack`, `nack` (no answer in time, or no way to reach it), or `late` (see `probe`). */
  async #direct (target: string, timeoutMs: number, options: { signal?: AbortSignal } = {}): Promise<ProbeOutcome> {
    if (this.#i.peers.isDenied(target)) return 'nack'
    const { scope, awareness } = this.#i
    let reason: unknown
    const ok = await scope.bounded(timeoutMs, options, async (signal) => {
      const channel = await this.#channel(target, signal)
      const sent = scope.clock.now()
      const acked = await channel.ping({ signal })
      if (acked) awareness.recordRtt(target, scope.clock.now() - sent)
      else reason = signal.reason
      return acked
    }).catch((err: Error) => {
      this.#log('probe of %s failed: %s', target, err.message)
      reason = err
      return false
    })
    if (ok) return 'ack'
    return isMeshError(reason, 'MESH_ERR_DIAL_LIMITED') ? 'skipped' : this.#lateness(reason, timeoutMs)
  }

  /** Asks `helper` to probe `target`: its answer, `none` when it gave none in time, `late` (see `probe`). */
  async #indirect (helper: string, target: string, timeoutMs: number): Promise<ProbeOutcome | 'none'> {
    let reason: unknown
    const answer = await this.#i.scope.bounded(timeoutMs, {}, async (signal) => {
      const a = await (await this.#channel(helper, signal)).pingReq(target, { signal })
      if (a === 'none') reason = signal.reason
      return a
    }).catch((err: Error): Answer => {
      this.#log('indirect probe of %s through %s failed: %s', target, helper, err.message)
      reason = err
      return 'none'
    })
    return answer === 'none' && this.#lateness(reason, timeoutMs) === 'late' ? 'late' : answer
  }

  /** A missing answer: `late` when this node decided the timeout behind its own backlog. */
  #lateness (reason: unknown, timeoutMs: number): 'nack' | 'late' {
    const lag = timeoutLag(reason)
    return lag !== undefined && this.#i.awareness.isLate(lag, timeoutMs) ? 'late' : 'nack'
  }

  async #suspect (target: string): Promise<void> {
    const { replica, peers, options, stats, net } = this.#i
    const e = replica.get(target)
    if (e === undefined) return
    const k = this.#i.awareness.expectedConfirmations(target, options.timing.suspicionConfirmations)
    const merged = replica.applySuspect(target, e.advert.incarnation, peers.selfId, k)
    if (merged !== 'started' && merged !== 'confirmed') return
    stats.suspicionsRaised++
    this.#log('suspect %s (%s)', target, e.advert.name)
    // Past the expected confirmations (`suspicionConfirmations`, fewer for a member with few
    // neighbours: Replica.applySuspect) the timeout is at its minimum everywhere that heard them:
    // one more changes nothing and costs every node a message. When a crash closes a member's
    // sockets, all its neighbours suspect it at once; most of them stay quiet this way.
    const now = replica.get(target)
    if (merged === 'confirmed' && now?.suspecters !== undefined && now.suspecters.size > now.expectedConfirmations! + 1) return
    const msg = { v: ADVERT_SCHEMA_VERSION, mesh: options.mesh, subject: target, incarnation: e.advert.incarnation, from: peers.selfId, issuedAt: this.#i.scope.clock.now(), k }
    const bytes = await encodeMessage('suspect', msg, options.mesh, this.#i.key)
    await net.publish(bytes)
      .then((recipients) => { stats.gossipBytes.out += bytes.length * recipients })
      .catch((err: Error) => { this.#log('suspect publish failed: %s', err.message) })
  }
}
