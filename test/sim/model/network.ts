// The model simulation's message layer: an in-memory `MeshNet` for each node, so the mesh's own
// gossip node (adverts, validation, SWIM probing, suspicion, sync, upkeep) runs unchanged on a
// virtual clock with no libp2p. What libp2p and gossipsub do is imitated, not run:
// - connections: a dial takes a handshake (3 one-way delays) and `connectMs` of CPU at each end;
//   a crashed node's connections close (its peers see them drop), as a dead process's sockets do;
// - gossip: a node publishes to every subscribed connection (gossipsub's flood publish); a node
//   that validates a new message forwards it to its mesh peers (degree D, kept between Dlo and Dhi
//   by a heartbeat); duplicates are dropped by a seen-cache; no IHAVE/IWANT gossip (anti-entropy
//   is the mesh's repair path);
// - streams: length-prefixed frames in order on their connection, half-close and reset;
// - time: each delivery waits the link delay (plus jitter, FIFO per direction), then the
//   receiver's CPU: each node has its own (a real deployment) or all share one (the one-process
//   harness, for calibration). CPU costs per hop are measured on the real stack (BENCHMARKS.md);
// - loss: every connection is TCP, which loses no data: a lost segment is sent again, so packet
//   loss shows up as delay (a retransmission timeout, or a round trip for a fast retransmit), and
//   everything behind it on the connection waits (head-of-line blocking, from the FIFO above);
// - slow nodes (WAN profile): a share of nodes pay more CPU per hop and sit behind a slower link.
import type { AbortOptions } from '@libp2p/interface'
import type { Clock, TimerHandle } from '../../../src/clock.ts'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import { END_OF_STREAM } from '../../../src/gossip/net.ts'
import type { FrameStream, MeshNet, MeshProtocol, NetEvents, NetFactory, NetInit } from '../../../src/gossip/net.ts'
import type { EventClock } from './event-clock.ts'

/** CPU each kind of work costs at the node doing it, in ms (measured on the real stack). */
export interface ModelCosts {
  /** Receiving a new gossip message: decode, verify, merge, forward. */
  messageMs: number
  /** Receiving a duplicate (dropped by the seen-cache). */
  duplicateMs: number
  /** Receiving one stream frame (a probe, an ack, a sync page). */
  frameMs: number
  /** Setting up one connection, at each end. */
  connectMs: number
}

/** How the model network behaves. */
export interface ModelOptions {
  /** One-way delay of every link, ms. */
  latencyMs: number
  /** Extra delay, uniform in [0, jitterMs), per delivery (order is kept per direction). */
  jitterMs: number
  /** `per-node`: each node has its own CPU (deployment); `shared`: one CPU for all (the harness). */
  cpu: 'per-node' | 'shared'
  costs: ModelCosts
  /**
   * true: a node's timers wait for all the work its CPU queued before they were due (a strict FIFO).
   * false (default): they fire when due, as Node runs due timers ahead of pending I/O in each turn
   * of its event loop; against the one-process harness this calibrated closer (BENCHMARKS.md).
   */
  timersWaitForCpu: boolean
  /**
   * Fraction of TCP segments lost, 0 to 1. Gossip, probes and sync all ride TCP connections, so
   * nothing is lost for good: a segment followed by at least 3 more of the same delivery comes
   * back by fast retransmit (one round trip later); a lone or last segment (a probe, an ack, most
   * gossip messages) waits for the retransmission timer, the link's round trip plus `rtoMinMs`,
   * doubling if the retransmission is lost too. A lost SYN waits 1 s (TCP's initial timeout).
   */
  lossRate: number
  /** Linux's minimum retransmission timeout (`tcp_rto_min`), ms. */
  rtoMinMs: number
  /**
   * Slow nodes: every 1/share-th node added pays `cpuFactor` times the CPU per hop, and its link
   * adds `extraLatencyMs` one way (to and from it; a link between two slow nodes adds it twice).
   */
  slow: { share: number, cpuFactor: number, extraLatencyMs: number }
  /** Gossipsub's mesh degree and bounds, and its heartbeat. */
  D: number
  Dlo: number
  Dhi: number
  heartbeatMs: number
}

/** Gossipsub's defaults and no CPU cost: override what a scenario measures. */
export const MODEL_DEFAULTS: ModelOptions = {
  latencyMs: 0,
  jitterMs: 0,
  cpu: 'per-node',
  timersWaitForCpu: false,
  costs: { messageMs: 0, duplicateMs: 0, frameMs: 0, connectMs: 0 },
  lossRate: 0,
  rtoMinMs: 200,
  slow: { share: 0, cpuFactor: 1, extraLatencyMs: 0 },
  D: 6,
  Dlo: 4,
  Dhi: 12,
  heartbeatMs: 1_000,
}

/** Named network shapes; CPU costs come separately (measured by bench/calibrate.ts). */
export type ModelProfile = 'lan' | 'wan'

/**
 * - `lan`: one data centre: 0.25 ms one way, up to 0.1 ms of jitter, no loss.
 * - `wan`: a mesh federated across organisations: 50 ms one way plus up to 20 ms of jitter
 *   (100 to 140 ms round trips), 1 % of TCP segments lost (and retransmitted), and 5 % of nodes
 *   slow: 10 times the CPU per hop and 150 ms more one way (400 to 440 ms round trips to them).
 */
export const MODEL_PROFILES: Record<ModelProfile, Partial<ModelOptions>> = {
  lan: { latencyMs: 0.25, jitterMs: 0.1 },
  wan: { latencyMs: 50, jitterMs: 20, lossRate: 0.01, slow: { share: 0.05, cpuFactor: 10, extraLatencyMs: 150 } },
}

/** TCP payload per segment, bytes (a 1,500-byte MTU less IP and TCP headers with timestamps). */
const MSS = 1_448

/** Bytes a message or frame carries on the wire beyond its payload (gossipsub RPC with topic, yamux, Noise, length prefix). */
export const WIRE_OVERHEAD = { message: 80, frame: 32 }

/** Watches the model's probe streams and dials (see probe-trace.ts): for diagnosis, changes nothing. */
export interface ModelTap {
  /** A frame on a probe stream: sent (at the sender, when written) or received (at the receiver, before its CPU). */
  frame(phase: 'sent' | 'received', from: ModelNet, to: ModelNet, streamId: number, data: Uint8Array, at: number, lossMs: number): void
  /** A node starts a new connection (a dial that is not already open or in flight). */
  dial(from: ModelNet, to: ModelNet): void
}

/** Traffic the model counted at one node (payload plus WIRE_OVERHEAD). */
export interface WireStats { in: number, out: number, messages: number, duplicates: number, frames: number }

const resetError = (): Error => Object.assign(new Error('connection closed'), { name: 'StreamResetError' })

/** Every node of one model simulation, on one event clock. */
export class ModelNetwork {
  readonly clock: EventClock
  readonly options: ModelOptions
  readonly #rng: () => number
  readonly #nodes = new Map<string, ModelNet>()
  readonly #ids = new WeakMap<Uint8Array, number>()
  /** Messages every node's seen-cache already holds (the adverts of a mesh seeded as converged). */
  readonly #preseen = new Set<number>()
  #nextId = 0
  #sharedBusy = 0
  #added = 0
  /** Deliveries that lost at least one segment and waited for its retransmission. */
  retransmitted = 0
  /** Optional observer of probe frames and dials. */
  tap?: ModelTap
  #streams = 0

  constructor (clock: EventClock, rng: () => number, options: Partial<ModelOptions> = {}) {
    this.clock = clock
    this.#rng = rng
    this.options = { ...MODEL_DEFAULTS, ...options, costs: { ...MODEL_DEFAULTS.costs, ...options.costs }, slow: { ...MODEL_DEFAULTS.slow, ...options.slow } }
  }

  /** The factory a gossip node's seam takes. */
  readonly factory: NetFactory = async (init) => this.#add(init)

  /**
   * A node's clock and network, to pass together in its seam: its timers fire when due or, if its
   * CPU is busy then, once the work queued before them is done (as on an event loop).
   */
  nodeSeam (): { clock: Clock, net: NetFactory } {
    const clock = new LoopClock(this)
    return { clock, net: async (init) => { const net = this.#add(init); clock.owner = net; return net } }
  }

  #add (init: NetInit): ModelNet {
    const slow = this.options.slow
    // Spread evenly (not drawn at random), so a share of 5 % is 5 of every 100 nodes added.
    const k = this.#added++
    const isSlow = slow.share > 0 && Math.floor((k + 1) * slow.share) > Math.floor(k * slow.share)
    const net = new ModelNet(this, init, isSlow)
    this.#nodes.set(net.peerId, net)
    return net
  }

  /** The node listening at a model address (`/model/<peer id>/p2p/<peer id>`). */
  byAddress (addr: string): ModelNet | undefined {
    return this.#nodes.get(addr.split('/p2p/').pop() ?? '')
  }

  node (peerId: string): ModelNet | undefined {
    return this.#nodes.get(peerId)
  }

  /** Connects two running nodes at once, as if they had been connected for a while (seeding a converged mesh). */
  connectNow (a: string, b: string): void {
    const x = this.#nodes.get(a)
    const y = this.#nodes.get(b)
    if (x === undefined || y === undefined || a === b) throw new Error(`model: cannot connect ${a} and ${b}`)
    x.linkNow(y)
  }

  /** Wire traffic summed over running nodes. */
  wire (): WireStats {
    const sum = { in: 0, out: 0, messages: 0, duplicates: 0, frames: 0 }
    for (const n of this.#nodes.values()) {
      if (!n.running) continue
      for (const k of Object.keys(sum) as Array<keyof WireStats>) sum[k] += n.wire[k]
    }
    return sum
  }

  /** One message ID per payload object: every copy in flight is the same bytes. */
  idOf (data: Uint8Array): number {
    let id = this.#ids.get(data)
    if (id === undefined) { id = ++this.#nextId; this.#ids.set(data, id) }
    return id
  }

  /** Treats `data` as already seen everywhere: a seeded, converged mesh has spread it before. */
  preseen (data: Uint8Array): void {
    this.#preseen.add(this.idOf(data))
  }

  seenEverywhere (id: number): boolean {
    return this.#preseen.has(id)
  }

  random (): number {
    return this.#rng()
  }

  /** One-way delay between two nodes before jitter, ms. */
  oneWay (a: ModelNet, b: ModelNet): number {
    const extra = this.options.slow.extraLatencyMs
    return this.options.latencyMs + (a.slow ? extra : 0) + (b.slow ? extra : 0)
  }

  /** The retransmission timeout of a connection between two nodes: its round trip plus `rtoMinMs`, ms. */
  rto (a: ModelNet, b: ModelNet): number {
    return 2 * this.oneWay(a, b) + this.options.jitterMs + this.options.rtoMinMs
  }

  /**
   * Extra delay TCP adds to a delivery of `segments` segments when some are lost (see `lossRate`).
   * `firstMs` is the first retransmission's wait when no later segment can trigger a fast retransmit.
   */
  #lossDelay (segments: number, rttMs: number, firstMs: number): number {
    const p = this.options.lossRate
    if (p <= 0) return 0
    let worst = 0
    for (let i = 0; i < segments; i++) {
      if (this.#rng() >= p) continue
      // At least 3 later segments bring duplicate ACKs: fast retransmit. Otherwise the timer.
      let wait = segments - i > 3 ? rttMs : firstMs
      // Each retransmission lost too doubles the timer (exponential backoff).
      for (let backoff = firstMs; this.#rng() < p; backoff *= 2) wait += backoff * 2
      worst = Math.max(worst, wait)
    }
    if (worst > 0) this.retransmitted++
    return worst
  }

  /** How long a connection set-up takes on the wire: three one-way delays (TCP, Noise), and any lost segment. */
  handshakeMs (a: ModelNet, b: ModelNet): number {
    const o = this.options
    const oneWay = this.oneWay(a, b)
    let ms = 3 * oneWay + (o.jitterMs > 0 ? (this.#rng() + this.#rng() + this.#rng()) * o.jitterMs : 0)
    // A lost SYN or SYN-ACK waits TCP's initial timeout of 1 s; the rest, a timeout from the handshake's RTT sample.
    ms += this.#lossDelay(1, 0, 1_000) + this.#lossDelay(1, 0, 1_000) + this.#lossDelay(1, 0, this.rto(a, b))
    return ms
  }

  /** Runs `fn` once `cost` ms of the node's CPU are free after `now`: returns when it will run. */
  cpu (node: ModelNet, cost: number, fn: () => void): void {
    const now = this.clock.preciseNow()
    const shared = this.options.cpu === 'shared'
    const start = Math.max(now, shared ? this.#sharedBusy : node.busyUntil)
    const done = start + cost * node.cpuFactor
    if (shared) this.#sharedBusy = done
    else node.busyUntil = done
    if (done <= now) fn()
    else this.clock.setTimeout(fn, done - now)
  }

  /** A new stream pair's ID (both ends share it). */
  streamId (): number {
    return ++this.#streams
  }

  /**
   * Delivers `bytes` over a link after its delay, any retransmission of a lost segment, and what is
   * ahead of it (FIFO per direction), then runs `fn` on the receiver's CPU. Returns the delay that
   * retransmissions added, its own or those of deliveries ahead of it on the connection, ms.
   */
  deliver (link: Link, from: ModelNet, cost: number, fn: () => void, bytes = 0): number {
    const o = this.options
    const dir = link.a === from ? 0 : 1
    const to = dir === 0 ? link.b : link.a
    const now = this.clock.preciseNow()
    const lossMs = o.lossRate > 0 ? this.#lossDelay(Math.max(1, Math.ceil(bytes / MSS)), 2 * link.oneWay + o.jitterMs, this.rto(link.a, link.b)) : 0
    const due = now + link.oneWay + (o.jitterMs > 0 ? this.#rng() * o.jitterMs : 0)
    const at = Math.max(due + lossMs, link.last[dir])
    link.last[dir] = at
    // Held behind jitter alone, a delivery waits less than jitterMs; longer, a retransmission is involved.
    const waited = at - due > o.jitterMs ? at - due : 0
    if (from.frozen) return waited
    this.clock.setTimeout(() => {
      if (!link.open || !to.running || to.frozen) return
      this.cpu(to, cost, () => { if (link.open && to.running) fn() })
    }, at - now)
    return waited
  }

  /** Waits `ms` of virtual time; rejects if `signal` aborts first. */
  async wait (ms: number, signal?: AbortSignal): Promise<void> {
    signal?.throwIfAborted()
    await new Promise<void>((resolve, reject) => {
      const onAbort = (): void => { this.clock.clearTimeout(h); reject(signal!.reason) }
      const h = this.clock.setTimeout(() => { signal?.removeEventListener('abort', onAbort); resolve() }, ms)
      signal?.addEventListener('abort', onAbort, { once: true })
    })
  }
}

/** A node's timers on the model's clock, run behind the work its CPU has queued. */
class LoopClock implements Clock {
  owner?: ModelNet
  readonly #net: ModelNetwork

  constructor (net: ModelNetwork) {
    this.#net = net
  }

  now (): number {
    return this.#net.clock.now()
  }

  setTimeout (fn: () => void, ms: number): TimerHandle {
    const t = { inner: undefined as TimerHandle | undefined, cancelled: false }
    t.inner = this.#net.clock.setTimeout(() => {
      const run = (): void => { if (!t.cancelled) fn() }
      if (this.owner === undefined || !this.#net.options.timersWaitForCpu) run()
      else this.#net.cpu(this.owner, 0, run)
    }, ms)
    return { id: t }
  }

  clearTimeout (handle: TimerHandle): void {
    const t = handle.id as { inner: TimerHandle, cancelled: boolean }
    t.cancelled = true
    this.#net.clock.clearTimeout(t.inner)
  }

  /** After the work this node's CPU has queued (deliveries that arrived are waiting there). */
  defer (fn: () => void): void {
    if (this.owner === undefined) this.#net.clock.setTimeout(fn, 0)
    else this.#net.cpu(this.owner, 0, fn)
  }
}

/** A connection between two nodes: both ends share it. */
class Link {
  open = true
  /** Arrival time of the last delivery each way (a < b, b < a): TCP keeps order. */
  readonly last: [number, number] = [0, 0]
  readonly streams = new Set<ModelStream>()
  readonly a: ModelNet
  readonly b: ModelNet
  /** One-way delay before jitter, ms. */
  readonly oneWay: number
  constructor (a: ModelNet, b: ModelNet, oneWay: number) {
    this.a = a
    this.b = b
    this.oneWay = oneWay
  }
  other (me: ModelNet): ModelNet { return me === this.a ? this.b : this.a }
}

/** One node's view of the model network. */
export class ModelNet implements MeshNet {
  readonly peerId: string
  readonly wire: WireStats = { in: 0, out: 0, messages: 0, duplicates: 0, frames: 0 }
  running = false
  /** A hung process (SIGSTOP): its connections stay open, but it neither receives nor sends. */
  frozen = false
  busyUntil = 0
  /** A slow node (see `ModelOptions.slow`). */
  readonly slow: boolean
  /** What each hop's CPU costs this node, as a multiple of the measured cost. */
  readonly cpuFactor: number
  readonly #net: ModelNetwork
  readonly #init: NetInit
  readonly #links = new Map<string, Link>()
  readonly #dialing = new Map<string, Promise<Link>>()
  readonly #subscribed = new Set<string>()
  readonly #mesh = new Set<string>()
  readonly #seen = new Map<number, number>()
  #events?: NetEvents
  #heartbeat?: { id: unknown }

  constructor (net: ModelNetwork, init: NetInit, slow = false) {
    this.#net = net
    this.#init = init
    this.slow = slow
    this.cpuFactor = slow ? net.options.slow.cpuFactor : 1
    this.peerId = peerIdFromPrivateKey(init.privateKey).toString()
  }

  addrs (): string[] {
    return [`/model/${this.peerId}/p2p/${this.peerId}`]
  }

  async start (events: NetEvents): Promise<void> {
    this.#events = events
    this.running = true
    const beat = (): void => {
      this.#heartbeat = this.#net.clock.setTimeout(beat, this.#net.options.heartbeatMs)
      this.#maintainMesh()
      const expiry = this.#net.clock.preciseNow() - 120_000 // gossipsub's seen-cache TTL
      for (const [id, at] of this.#seen) { if (at >= expiry) break; this.#seen.delete(id) }
    }
    this.#heartbeat = this.#net.clock.setTimeout(beat, Math.floor(this.#net.random() * this.#net.options.heartbeatMs))
  }

  async stop (): Promise<void> {
    if (!this.running) return
    this.running = false
    if (this.#heartbeat !== undefined) this.#net.clock.clearTimeout(this.#heartbeat as never)
    for (const link of [...this.#links.values()]) this.#close(link, false)
  }

  async publish (data: Uint8Array): Promise<number> {
    const id = this.#net.idOf(data)
    this.#seen.set(id, this.#net.clock.preciseNow())
    let sent = 0
    for (const peer of this.#subscribed) {
      const link = this.#links.get(peer)
      if (link === undefined) continue
      this.#send(link, id, data)
      sent++
    }
    return sent
  }

  subscribers (): number {
    return this.#subscribed.size
  }

  connections (): string[] {
    return [...this.#links.keys()]
  }

  isConnected (peerId: string): boolean {
    return this.#links.has(peerId)
  }

  async dial (peerId: string, _addrs: readonly string[], options: AbortOptions): Promise<void> {
    await this.#link(peerId, options)
  }

  async dialAddress (addr: string, options: AbortOptions): Promise<string> {
    const target = this.#net.byAddress(addr)
    if (target === undefined) throw Object.assign(new Error(`no node listens at ${addr}`), { name: 'DialError' })
    await this.#link(target.peerId, options)
    return target.peerId
  }

  async hangUp (peerId: string): Promise<void> {
    const link = this.#links.get(peerId)
    if (link !== undefined) this.#close(link, true)
  }

  async open (peerId: string, protocol: MeshProtocol, _addrs: readonly string[], options: AbortOptions): Promise<FrameStream> {
    const link = await this.#link(peerId, options)
    const id = this.#net.streamId()
    const traced = protocol === 'probe'
    const mine = new ModelStream(this.#net, link, this, id, traced)
    const theirs = new ModelStream(this.#net, link, link.other(this), id, traced)
    mine.peer = theirs
    theirs.peer = mine
    link.streams.add(mine).add(theirs)
    // The remote's handler runs when the stream's opening frame arrives (it precedes any data).
    this.#net.deliver(link, this, 0, () => { link.other(this).#events?.stream(protocol, theirs, this.peerId) })
    return mine
  }

  // ---- connections -------------------------------------------------------------------------

  async #link (peerId: string, options: AbortOptions): Promise<Link> {
    options.signal?.throwIfAborted()
    const existing = this.#links.get(peerId)
    if (existing !== undefined) return existing
    let pending = this.#dialing.get(peerId)
    if (pending === undefined) {
      const target = this.#net.node(peerId)
      if (target !== undefined) this.#net.tap?.dial(this, target)
      pending = this.#connect(peerId).finally(() => { this.#dialing.delete(peerId) })
      this.#dialing.set(peerId, pending)
    }
    const signal = options.signal
    if (signal === undefined) return pending
    return Promise.race([pending, new Promise<never>((_resolve, reject) => {
      signal.addEventListener('abort', () => { reject(signal.reason) }, { once: true })
    })])
  }

  async #connect (peerId: string): Promise<Link> {
    const net = this.#net
    const o = net.options
    const target = net.node(peerId)
    if (!this.running) throw Object.assign(new Error('node is stopped'), { name: 'DialError' })
    if (this.#init.deny.has(peerId) || peerId === this.peerId) throw Object.assign(new Error(`dial to ${peerId} denied`), { name: 'DialDeniedError' })
    if (target === undefined || !target.running || target.#init.deny.has(this.peerId)) {
      // A dead host refuses at once (RST after one round trip); a gater closes the handshake.
      await net.wait(2 * (target === undefined ? o.latencyMs : net.oneWay(this, target)))
      throw Object.assign(new Error(`connection to ${peerId} refused`), { name: 'DialError' })
    }
    // TCP, Noise XX and yamux: about three one-way delays, and the handshake's CPU at both ends.
    await net.wait(net.handshakeMs(this, target))
    await new Promise<void>((resolve) => { net.cpu(this, o.costs.connectMs, resolve) })
    await new Promise<void>((resolve) => { net.cpu(target, o.costs.connectMs, resolve) })
    const again = this.#links.get(peerId)
    if (again !== undefined) return again
    if (!this.running || !target.running) throw Object.assign(new Error(`connection to ${peerId} closed`), { name: 'DialError' })
    // The gater checks again once the handshake is done (a peer may have been denied meanwhile).
    if (this.#init.deny.has(peerId) || target.#init.deny.has(this.peerId)) throw Object.assign(new Error(`connection to ${peerId} denied`), { name: 'DialDeniedError' })
    const link = new Link(this, target, this.#net.oneWay(this, target))
    this.#links.set(peerId, link)
    target.#links.set(this.peerId, link)
    // Each side learns the other's subscription one delay later; then the mesh may take it in.
    net.deliver(link, this, 0, () => { target.#onSubscribed(this.peerId) })
    net.deliver(link, target, 0, () => { this.#onSubscribed(peerId) })
    return link
  }

  /** A connection that already exists, subscriptions exchanged (see `ModelNetwork.connectNow`). */
  linkNow (target: ModelNet): void {
    if (this.#links.has(target.peerId) || !this.running || !target.running) return
    const link = new Link(this, target, this.#net.oneWay(this, target))
    this.#links.set(target.peerId, link)
    target.#links.set(this.peerId, link)
    this.#onSubscribed(target.peerId)
    target.#onSubscribed(this.peerId)
  }

  #onSubscribed (peerId: string): void {
    if (!this.#links.has(peerId)) return
    this.#subscribed.add(peerId)
    if (this.#mesh.size < this.#net.options.D) this.#graft(peerId)
    this.#events?.subscribed()
  }

  #close (link: Link, local: boolean): void {
    if (!link.open) return
    link.open = false
    const other = link.other(this)
    for (const end of [this, other]) {
      const id = end === this ? other.peerId : this.peerId
      end.#links.delete(id)
      end.#subscribed.delete(id)
      end.#mesh.delete(id)
    }
    for (const s of link.streams) s.reset()
    // The other end sees the socket close one delay later (a crashed process's too).
    this.#net.clock.setTimeout(() => { if (other.running) other.#events?.disconnected(this.peerId) }, link.oneWay)
    if (local) queueMicrotask(() => { if (this.running) this.#events?.disconnected(other.peerId) })
  }

  // ---- gossip --------------------------------------------------------------------------------

  #send (link: Link, id: number, data: Uint8Array): void {
    const to = link.other(this)
    const size = data.length + WIRE_OVERHEAD.message
    this.wire.out += size
    this.#net.deliver(link, this, 0, () => { to.#receive(this.peerId, id, data, size) }, size)
  }

  #receive (from: string, id: number, data: Uint8Array, size: number): void {
    this.wire.in += size
    if (this.#seen.has(id) || this.#net.seenEverywhere(id)) {
      this.wire.duplicates++
      this.#net.cpu(this, this.#net.options.costs.duplicateMs, () => {})
      return
    }
    this.#seen.set(id, this.#net.clock.preciseNow())
    this.wire.messages++
    this.#net.cpu(this, this.#net.options.costs.messageMs, () => {
      void this.#events!.validate(from, data, false).then((verdict) => {
        if (verdict !== 'accept' || !this.running) return
        for (const peer of this.#mesh) {
          if (peer === from) continue
          const link = this.#links.get(peer)
          if (link !== undefined) this.#send(link, id, data)
        }
      }, () => {})
    })
  }

  #graft (peerId: string): void {
    const link = this.#links.get(peerId)
    if (link === undefined) return
    this.#mesh.add(peerId)
    const other = link.other(this)
    this.#net.deliver(link, this, 0, () => { if (other.#links.has(this.peerId)) other.#mesh.add(this.peerId) })
  }

  #maintainMesh (): void {
    const o = this.#net.options
    if (this.#mesh.size < o.Dlo) {
      const candidates = [...this.#subscribed].filter((p) => !this.#mesh.has(p))
      while (this.#mesh.size < o.D && candidates.length > 0) {
        const [p] = candidates.splice(Math.floor(this.#net.random() * candidates.length), 1)
        this.#graft(p)
      }
    } else if (this.#mesh.size > o.Dhi) {
      const members = [...this.#mesh]
      while (this.#mesh.size > o.D) {
        const [p] = members.splice(Math.floor(this.#net.random() * members.length), 1)
        this.#mesh.delete(p)
        const link = this.#links.get(p)
        if (link !== undefined) this.#net.deliver(link, this, 0, () => { link.other(this).#mesh.delete(this.peerId) })
      }
    }
  }
}

/** One end of a stream: frames arrive in order; `close` ends our side, `abort` resets both. */
class ModelStream implements FrameStream {
  peer!: ModelStream
  readonly #net: ModelNetwork
  readonly #link: Link
  readonly #owner: ModelNet
  readonly #id: number
  /** Frames are shown to the network's tap (probe streams). */
  readonly #traced: boolean
  readonly #frames: Uint8Array[] = []
  readonly #waiting: Array<{ resolve: (f: Uint8Array) => void, reject: (e: Error) => void }> = []
  #ended = false
  #error?: Error
  #closedLocal = false

  constructor (net: ModelNetwork, link: Link, owner: ModelNet, id: number, traced: boolean) {
    this.#net = net
    this.#link = link
    this.#owner = owner
    this.#id = id
    this.#traced = traced
  }

  async read (options: AbortOptions = {}): Promise<Uint8Array> {
    options.signal?.throwIfAborted()
    const f = this.#frames.shift()
    if (f !== undefined) return f
    if (this.#error !== undefined) throw this.#error
    if (this.#ended) throw Object.assign(new Error('unexpected end of input'), { name: END_OF_STREAM })
    return new Promise((resolve, reject) => {
      const signal = options.signal
      const w = {
        resolve: (x: Uint8Array) => { signal?.removeEventListener('abort', onAbort); resolve(x) },
        reject: (e: Error) => { signal?.removeEventListener('abort', onAbort); reject(e) },
      }
      const onAbort = (): void => {
        const i = this.#waiting.indexOf(w)
        if (i >= 0) this.#waiting.splice(i, 1)
        reject(signal!.reason)
      }
      signal?.addEventListener('abort', onAbort, { once: true })
      this.#waiting.push(w)
    })
  }

  async write (frame: Uint8Array, options: AbortOptions = {}): Promise<void> {
    options.signal?.throwIfAborted()
    if (this.#error !== undefined) throw this.#error
    if (this.#closedLocal) throw Object.assign(new Error('stream closed for writing'), { name: 'StreamStateError' })
    const size = frame.length + WIRE_OVERHEAD.frame
    this.#owner.wire.out += size
    const peer = this.peer
    const net = this.#net
    const tap = this.#traced ? net.tap : undefined
    const lossMs = net.deliver(this.#link, this.#owner, net.options.costs.frameMs, () => {
      peer.#owner.wire.in += size
      peer.#owner.wire.frames++
      tap?.frame('received', this.#owner, peer.#owner, this.#id, frame, net.clock.preciseNow(), lossMs)
      peer.#push(frame)
    }, size)
    tap?.frame('sent', this.#owner, peer.#owner, this.#id, frame, net.clock.preciseNow(), lossMs)
  }

  async close (): Promise<void> {
    if (this.#closedLocal || this.#error !== undefined) return
    this.#closedLocal = true
    const peer = this.peer
    this.#net.deliver(this.#link, this.#owner, 0, () => { peer.#end() })
    if (this.#ended) this.#forget()
  }

  abort (err: Error): void {
    if (this.#error !== undefined) return
    this.#fail(err)
    const peer = this.peer
    this.#forget()
    if (this.#link.open) this.#net.deliver(this.#link, this.#owner, 0, () => { peer.#fail(resetError()) })
  }

  /** The connection closed under the stream. */
  reset (): void {
    this.#fail(resetError())
  }

  #forget (): void {
    this.#link.streams.delete(this)
    this.#link.streams.delete(this.peer)
  }

  #push (frame: Uint8Array): void {
    if (this.#error !== undefined) return
    const w = this.#waiting.shift()
    if (w !== undefined) w.resolve(frame)
    else this.#frames.push(frame)
  }

  #end (): void {
    this.#ended = true
    if (this.#closedLocal) this.#forget()
    const eof = (): Error => Object.assign(new Error('unexpected end of input'), { name: END_OF_STREAM })
    for (const w of this.#waiting.splice(0)) w.reject(eof())
  }

  #fail (err: Error): void {
    if (this.#error !== undefined) return
    this.#error = err
    this.#frames.length = 0
    for (const w of this.#waiting.splice(0)) w.reject(err)
  }
}
