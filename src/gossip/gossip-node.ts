import { generateKeyPair } from '@libp2p/crypto/keys'
import { logger } from '@libp2p/logger'
import type { PrivateKey, AbortOptions } from '@libp2p/interface'
import { parseGossipOptions } from '../config.ts'
import type { GossipOptions, GossipOptionsInput } from '../config.ts'
import { systemClock } from '../clock.ts'
import type { Clock, TimerHandle } from '../clock.ts'
import { MeshError } from '../errors.ts'
import { AdvertSchema, ADVERT_SCHEMA_VERSION, compareVersions } from '../topology/advert.ts'
import type { Advert, AdvertInput } from '../topology/advert.ts'
import { Replica } from '../topology/replica.ts'
import type { EntryHash } from '../topology/digest.ts'
import type { HostSeam } from './host.ts'
import { createLibp2pNet } from './libp2p-net.ts'
import type { FrameStream, MeshNet, NetFactory, Verdict } from './net.ts'
import { decodeMessage, dropReason, encodeMessage } from './codec.ts'
import type { DropReason } from './codec.ts'
import { holdDefaultKey, loadOrCreateKey } from './keys.ts'
import type { HeldKey } from './keys.ts'
import { Quota } from './quota.ts'
import { requestSync, serveSync } from './sync.ts'
import type { SyncContext, SyncResult, View } from './sync.ts'
import { ProbeChannel, serveProbe, MAX_PROBE_FRAME_BYTES } from './probe.ts'
import { Awareness } from './awareness.ts'
import type { ProbeContext, Answer } from './probe.ts'

const log = logger('mesh:gossip')

/** What an agent puts in its advert; the mesh stamps identity, mesh, versions and addresses. */
export type AdvertBody = Pick<AdvertInput, 'tools' | 'dependencies' | 'endpoint' | 'status'>

/** Counters a node keeps about its gossip (tests and benchmarks read them). */
export interface GossipStats {
  /** Messages dropped, by reason: each is counted once, at the node that dropped it. */
  dropped: Partial<Record<DropReason, number>>
  /** Gossip messages accepted (they changed the replica and were forwarded). */
  accepted: number
  published: number
  probes: number
  probeFailures: number
  suspicionsRaised: number
  refutations: number
  syncs: number
  syncBytes: { in: number, out: number }
  /**
   * Gossip payload: bytes of messages this node validated (in), and of its own publications times
   * the peers they went to (out). Gossipsub's forwarding and control traffic are not included.
   */
  gossipBytes: { in: number, out: number }
  probeBytes: { in: number, out: number }
}

/** Pieces tests and simulations replace: the clock, the key, the network, randomness, faults. */
export interface GossipSeam extends Omit<HostSeam, 'deny'> {
  clock?: Clock
  privateKey?: PrivateKey
  /** The network (default: libp2p, built with this seam's transports and encrypters). */
  net?: NetFactory
  /** Every random choice the node makes (probe order, peers, jitter); default `Math.random`. */
  random?: () => number
  /**
   * Decodes and verifies a signed message (default `decodeMessage`). The model simulation passes a
   * memo of it: thousands of nodes then share one decoded copy of each advert.
   */
  decode?: typeof decodeMessage
  /** The replica's digest hash (default SHA-256); the model simulation passes a memo of it. */
  digestHash?: EntryHash
  /**
   * Fault injection for simulations: return true to lose an inbound gossip message (it is
   * neither merged nor forwarded by this node) or a probe ping (it is not answered).
   */
  lose?: (kind: 'gossip' | 'probe', from: string) => boolean
}

/** A running member of a mesh (agent, bootstrap or observer) as far as discovery goes. */
export interface GossipNode {
  readonly options: GossipOptions
  /** This node's peer ID (after start). */
  readonly peerId: string
  readonly replica: Replica
  readonly stats: GossipStats
  /** Dialable multiaddrs of this node, with /p2p/<peer id> (after start). */
  readonly addrs: string[]
  /** The node's own current advert (undefined for observers). */
  readonly advert: Advert | undefined
  start(options?: AbortOptions): Promise<void>
  /** Resolves after the first successful sync (at once when there is no bootstrap to join). */
  ready(options?: AbortOptions): Promise<void>
  /** Replaces the advert body, bumps the sequence and gossips it. */
  updateAdvert(body: AdvertBody): Promise<void>
  /** Runs one anti-entropy exchange with a peer (`full`: a whole snapshot). */
  syncWith(peerId: string, full?: boolean, options?: AbortOptions): Promise<SyncResult>
  /** Members this node holds an open connection to: the ones it probes. */
  neighbours(): string[]
  /** Cuts these peers off (no dials, no inbound, current connections closed): partitions in tests. */
  deny(peerIds: Iterable<string>): Promise<void>
  /** Lets these peers (all, when omitted) back in. */
  allow(peerIds?: Iterable<string>): void
  /**
   * Says goodbye (signed leave), stops every loop and closes every socket. Idempotent.
   * `leave: false` skips the goodbye: peers see the sockets close, as after a crash (simulations).
   */
  stop(options?: { leave?: boolean }): Promise<void>
}

/** Creates a gossip node; nothing runs until `start()`. Options are validated here. */
export function createGossipNode (init: GossipOptionsInput & { advert?: AdvertBody }, seam: GossipSeam = {}): GossipNode {
  return new MeshGossip(init, seam)
}

class MeshGossip implements GossipNode {
  readonly options: GossipOptions
  readonly stats: GossipStats = { dropped: {}, accepted: 0, published: 0, probes: 0, probeFailures: 0, suspicionsRaised: 0, refutations: 0, syncs: 0, syncBytes: { in: 0, out: 0 }, gossipBytes: { in: 0, out: 0 }, probeBytes: { in: 0, out: 0 } }
  readonly #clock: Clock
  readonly #seam: GossipSeam
  readonly #denied = new Set<string>()
  #body: AdvertBody
  #net?: MeshNet
  #replica?: Replica
  #key?: PrivateKey
  #held?: HeldKey
  #self?: { advert: Advert, envelope: Uint8Array }
  #abort = new AbortController()
  #timers = new Set<TimerHandle>()
  #running = false
  #stopping?: Promise<void>
  #joined = false
  #joining = false
  #joinBackoff: number
  #nextJoinAt = 0
  #readyWaiters = Promise.withResolvers<void>()
  #publishPending = false
  #publishRetries = 0
  #inflightProbes = new Set<string>()
  /** Upkeep dials in flight. */
  readonly #upkeepDials = new Set<string>()
  #probeOrder: string[] = []
  #redialAt = new Map<string, { at: number, backoff: number }>()
  #ticks = 0
  #advertQuota: Quota
  #syncQuota: Quota
  #syncContext!: SyncContext
  #channels = new Map<string, Promise<ProbeChannel>>()
  /** Lifeguard's local health and each neighbour's round trip: our timeouts and probe rate. */
  readonly #awareness: Awareness
  readonly #random: () => number
  readonly #decode: typeof decodeMessage
  #selfId = ''

  constructor (init: GossipOptionsInput & { advert?: AdvertBody }, seam: GossipSeam) {
    const { advert, ...opts } = init
    this.options = parseGossipOptions(opts)
    this.#body = advert ?? { tools: [] }
    this.#seam = seam
    this.#clock = seam.clock ?? systemClock
    this.#random = seam.random ?? Math.random
    this.#decode = seam.decode ?? decodeMessage
    this.#joinBackoff = this.options.timing.joinRetryMs
    const q = this.options.quota
    this.#awareness = new Awareness(this.options.timing)
    this.#advertQuota = new Quota({ clock: this.#clock, perMinute: q.advertsPerMinute, burst: q.advertBurst })
    this.#syncQuota = new Quota({ clock: this.#clock, perMinute: q.syncPerMinute, burst: Math.max(10, q.syncPerMinute / 6) })
  }

  get peerId (): string {
    return this.#selfId
  }

  get replica (): Replica {
    if (this.#replica === undefined) throw new MeshError('MESH_ERR_NOT_STARTED', 'the node has not been started: call start() first')
    return this.#replica
  }

  get addrs (): string[] {
    return this.#net?.addrs() ?? []
  }

  get advert (): Advert | undefined {
    return this.#self?.advert
  }

  get #member (): boolean {
    return this.options.role !== 'observer'
  }

  async start (options: AbortOptions = {}): Promise<void> {
    if (this.#running || this.#net !== undefined) return
    options.signal?.throwIfAborted()
    const o = this.options
    this.#key = this.#seam.privateKey ?? await this.#loadKey()
    const maxFrameBytes = Math.max(2 * 1024 * 1024, o.quota.maxMessageBytes * 4)
    const init = { options: o, privateKey: this.#key, deny: this.#denied, maxFrameBytes: { sync: maxFrameBytes, probe: MAX_PROBE_FRAME_BYTES } }
    const net = this.#net = await (this.#seam.net ?? (async (i) => createLibp2pNet(i, this.#seam)))(init)
    const selfId = this.#selfId = net.peerId
    this.#replica = new Replica({ selfId, clock: this.#clock, timing: o.timing, ...(this.#seam.digestHash === undefined ? {} : { digestHash: this.#seam.digestHash }) })
    this.#replica.onChange((c) => {
      if ((c.after === 'dead' || c.after === 'left') && c.before !== undefined) this.#redialAt.set(c.peerId, { at: this.#clock.now() + 1_000, backoff: 1_000 })
      if (c.after === 'alive') this.#redialAt.delete(c.peerId)
      else if (c.after === 'dead' || c.after === 'left') this.#awareness.forget(c.peerId)
    })
    this.#syncContext = {
      replica: this.#replica,
      self: () => this.#self === undefined ? undefined : { envelope: this.#self.envelope, i: this.#self.advert.incarnation, s: this.#self.advert.seq },
      viewOf: (p) => this.#viewOf(p),
      onView: (v) => { this.#onView(v) },
      // Not trusted (a liar could evict anyone): probe it; only a failed probe makes it suspect.
      onDeadHint: (p, inc) => {
        const e = this.#replica?.get(p)
        if (this.#member && e !== undefined && this.#isUp(p) && e.advert.incarnation <= inc) void this.#probeMember(p)
      },
      ingest: async (env) => { await this.#receive(env, 'sync') },
      allow: (p) => this.#syncQuota.take(p),
      pageSize: o.quota.syncPageSize,
      maxFrameBytes,
      bytes: this.stats.syncBytes,
    }
    await net.start({
      validate: async (from, data, signed) => this.#validate(from, data, signed),
      subscribed: () => { if (this.#publishPending) void this.#publishSelf() },
      disconnected: (id) => {
        this.#dropChannel(id)
        // Spread over 200 ms: when a crash closes a member's sockets, its neighbours do not all
        // probe and suspect it in the same instant; the first voices arrive before the rest speak.
        if (this.#running && this.#member && this.#isUp(id)) this.#later(25 + Math.floor(this.#random() * 200), () => { void this.#probeMember(id) })
      },
      stream: (protocol, stream, from) => { void (protocol === 'sync' ? this.#onSyncStream(stream, from) : this.#onProbeStream(stream, from)) },
    })
    this.#running = true
    if (this.#member) await this.#issueAdvert(this.#clock.now(), 0)
    if (o.bootstrap.length === 0) {
      this.#joined = true
      this.#readyWaiters.resolve()
    } else {
      void this.#tryJoin()
    }
    this.#loop(o.timing.probeIntervalMs, () => { if (this.#member) this.#probeTick() })
    this.#loop(o.timing.antiEntropyIntervalMs, () => { this.#antiEntropyTick() })
    this.#loop(o.timing.maintainIntervalMs, () => { this.#maintainTick() })
    log('started %s (%s) on %s', selfId, o.name, this.addrs.join(' '))
  }

  async ready (options: AbortOptions = {}): Promise<void> {
    if (options.signal === undefined) return this.#readyWaiters.promise
    const { signal } = options
    signal.throwIfAborted()
    return new Promise((resolve, reject) => {
      const onAbort = (): void => { reject(new MeshError('MESH_ERR_ABORTED', 'waiting for the first sync was aborted', { cause: signal.reason })) }
      signal.addEventListener('abort', onAbort, { once: true })
      this.#readyWaiters.promise.then(resolve, reject).finally(() => { signal.removeEventListener('abort', onAbort) })
    })
  }

  async updateAdvert (body: AdvertBody): Promise<void> {
    this.#body = body
    if (!this.#running || !this.#member) return
    await this.#issueAdvert(this.#self!.advert.incarnation, this.#self!.advert.seq + 1)
  }

  async syncWith (peerId: string, full = false, options: AbortOptions = {}): Promise<SyncResult> {
    const res = await this.#exchange(peerId, 5_000, options, async (stream, signal) => requestSync(stream, peerId, this.#syncContext, full, { signal }))
    this.stats.syncs++
    return res
  }

  neighbours (): string[] {
    return this.#running ? this.#connectedMembers() : []
  }

  async deny (peerIds: Iterable<string>): Promise<void> {
    const ids = [...peerIds]
    for (const id of ids) this.#denied.add(id)
    await Promise.all(ids.map(async (id) => this.#net?.hangUp(id).catch(() => {})))
    // A member we cut off may have no other neighbour on our side to notice: check each one (a
    // member others still reach is vouched for by their indirect probes, and stays alive).
    if (this.#running && this.#member) for (const id of ids) if (this.#isUp(id)) void this.#probeMember(id)
  }

  allow (peerIds?: Iterable<string>): void {
    if (peerIds === undefined) this.#denied.clear()
    else for (const id of peerIds) this.#denied.delete(id)
  }

  async stop (options: { leave?: boolean } = {}): Promise<void> {
    this.#stopping ??= this.#doStop(options.leave ?? true)
    return this.#stopping
  }

  async #doStop (leave: boolean): Promise<void> {
    const net = this.#net
    if (net === undefined) return
    if (leave && this.#running && this.#member && this.#self !== undefined) {
      // Best effort: a signed leave lets every replica drop us at once instead of after a suspicion.
      const leave = { v: ADVERT_SCHEMA_VERSION, mesh: this.options.mesh, peerId: this.peerId, incarnation: this.#self.advert.incarnation, issuedAt: this.#clock.now() }
      const bytes = await encodeMessage('leave', leave, this.options.mesh, this.#key!)
      await net.publish(bytes).catch(() => {})
    }
    this.#running = false
    this.#abort.abort(new MeshError('MESH_ERR_ABORTED', 'the node is stopping'))
    for (const id of [...this.#channels.keys()]) this.#dropChannel(id)
    for (const t of this.#timers) this.#clock.clearTimeout(t)
    this.#timers.clear()
    this.#replica?.stop()
    this.#readyWaiters.reject(new MeshError('MESH_ERR_NOT_STARTED', 'the node stopped before its first sync'))
    this.#readyWaiters.promise.catch(() => {})
    await net.stop()
    await this.#held?.release()
    log('stopped %s', this.peerId)
  }

  // ---- adverts -------------------------------------------------------------------------------

  async #loadKey (): Promise<PrivateKey> {
    const o = this.options
    if (o.ephemeralKey) return generateKeyPair('Ed25519')
    if (o.keyFile !== undefined) return loadOrCreateKey(o.keyFile)
    this.#held = await holdDefaultKey(o.home, o.name)
    return this.#held.key
  }

  async #issueAdvert (incarnation: number, seq: number): Promise<void> {
    const o = this.options
    const parsed = AdvertSchema.safeParse({
      ...this.#body,
      v: ADVERT_SCHEMA_VERSION,
      mesh: o.mesh,
      name: o.name,
      role: o.role,
      peerId: this.peerId,
      incarnation,
      seq,
      issuedAt: this.#clock.now(),
      addrs: this.addrs.slice(0, 16),
    })
    if (!parsed.success) throw new MeshError('MESH_ERR_ADVERT_INVALID', `this agent's advert is invalid: ${parsed.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; ')}`, { details: { issues: parsed.error.issues } })
    const envelope = await encodeMessage('advert', parsed.data, o.mesh, this.#key!)
    if (envelope.length > o.quota.maxMessageBytes) throw new MeshError('MESH_ERR_WIRE_TOO_LARGE', `this agent's advert is ${envelope.length} bytes; the limit is ${o.quota.maxMessageBytes} (fewer tools or smaller schemas)`)
    this.#self = { advert: parsed.data, envelope }
    this.replica.applyAdvert(parsed.data, envelope)
    await this.#publishSelf()
  }

  async #publishSelf (): Promise<void> {
    const net = this.#net!
    // The first publish after connecting reaches nobody until subscriptions are exchanged: wait for one.
    if (net.subscribers() === 0) {
      this.#publishPending = true
      return
    }
    this.#publishPending = false
    try {
      const recipients = await net.publish(this.#self!.envelope)
      this.stats.gossipBytes.out += this.#self!.envelope.length * recipients
      this.stats.published++
      // Gossipsub drops a message silently for a peer whose outbound stream is not open yet (just
      // connected): none sent means none published. Retry soon, as a new sequence (the same bytes
      // would be a duplicate), a bounded number of times; the heartbeat's gossip covers the rest.
      if (recipients === 0 && this.#publishRetries < 20) {
        this.#publishRetries++
        this.#later(50, () => { void this.#issueAdvert(this.#self!.advert.incarnation, this.#self!.advert.seq + 1).catch(() => {}) })
      } else if (recipients > 0) {
        this.#publishRetries = 0
      }
    } catch (err) {
      log('publish failed: %s', (err as Error).message)
      this.#publishPending = true
    }
  }

  /**
   * Someone holds our current incarnation as suspect or dead: refute with a higher one.
   * A claim about an incarnation we never had is ignored (a liar cannot push our counter to the
   * end of the safe integers); only an advert signed by our own key may raise us past it.
   */
  #refute (theirIncarnation: number, signedByUs = false): void {
    const own = this.#self?.advert.incarnation
    if (!this.#running || own === undefined || theirIncarnation < own) return
    if (theirIncarnation > own && !signedByUs) return
    const next = Math.max(this.#clock.now(), theirIncarnation + 1)
    if (!Number.isSafeInteger(next)) return
    this.stats.refutations++
    this.#awareness.adjust(1)
    log('refuting incarnation %d with %d', theirIncarnation, next)
    this.#issueAdvert(next, 0).catch((err: Error) => { log.error('refutation failed: %s', err.message) })
  }

  // ---- gossip validation (runs before anything is forwarded) ---------------------------------

  #drop (reason: DropReason): Verdict {
    this.stats.dropped[reason] = (this.stats.dropped[reason] ?? 0) + 1
    return reason === 'quota' || reason === 'too-old' || reason === 'future' || reason === 'unknown-sender' ? 'ignore' : 'reject'
  }

  async #validate (from: string, data: Uint8Array, signed: boolean): Promise<Verdict> {
    if (this.#seam.lose?.('gossip', from) === true) return 'ignore'
    this.stats.gossipBytes.in += data.length
    if (signed) return this.#drop('malformed')
    return this.#receive(data, 'gossip')
  }

  /**
   * Verifies and merges one signed message, from gossip (returns what gossipsub should do with it)
   * or from sync (same checks, no quota: a sync page holds at most one version per member).
   */
  async #receive (bytes: Uint8Array, via: 'gossip' | 'sync'): Promise<Verdict> {
    let decoded
    try {
      decoded = await this.#decode(bytes, this.options.mesh, this.options.quota.maxMessageBytes)
    } catch (err) {
      return this.#drop(dropReason(err))
    }
    const replica = this.replica
    const selfId = this.#selfId
    if (decoded.kind === 'advert') {
      const a = decoded.payload
      if (a.peerId === selfId) {
        if (compareVersions(a, this.#self?.advert ?? { incarnation: -1, seq: 0 }) >= 0) this.#refute(a.incarnation, true)
        return 'ignore'
      }
      const known = replica.get(a.peerId)
      if (known !== undefined) {
        const cmp = compareVersions(a, known.advert)
        // The version we hold, first seen by sync (a joiner pushes its advert to its door before it
        // gossips it): forward it, or the door would stop its spread. Gossipsub's seen-cache stops loops.
        if (cmp === 0 && (known.liveness === 'alive' || known.liveness === 'suspect')) return 'accept'
        if (cmp <= 0) return 'ignore'
      }
      if (via === 'gossip' && !this.#advertQuota.take(a.peerId)) return this.#drop('quota')
      const merged = replica.applyAdvert(a, bytes)
      if (merged === 'too-old' || merged === 'future') return this.#drop(merged)
      if (merged === 'new' || merged === 'updated' || merged === 'revived') { this.stats.accepted++; return 'accept' }
      return 'ignore'
    }
    if (decoded.kind === 'leave') {
      const l = decoded.payload
      if (l.peerId === selfId) return 'ignore'
      if (replica.applyLeave(l.peerId, l.incarnation, bytes) === 'left') { this.stats.accepted++; return 'accept' }
      // A leave we already hold (learnt by sync) is forwarded too, for the same reason as adverts.
      const left = replica.get(l.peerId)
      return left?.liveness === 'left' && left.downIncarnation === l.incarnation ? 'accept' : 'ignore'
    }
    if (via === 'sync') return 'ignore' // suspicions travel by gossip only
    const s = decoded.payload
    if (replica.get(s.from) === undefined || !this.#isUp(s.from)) return this.#drop('unknown-sender')
    if (!this.#advertQuota.take(s.from)) return this.#drop('quota')
    const merged = replica.applySuspect(s.subject, s.incarnation, s.from)
    if (merged === 'self') { this.#refute(s.incarnation); return 'ignore' }
    if (merged !== 'started' && merged !== 'confirmed') return 'ignore'
    this.stats.accepted++
    // Confirm independently: the suspect's neighbours probe it; only a failed probe adds a voice.
    // Non-neighbours do not dial it: each dial costs a Noise handshake on both ends and leaves a
    // connection to probe for good, and on a loaded host (start-up bursts) that amplified false
    // suspicions into a lasting storm, even when sampled and budgeted. The cost: a member killed
    // before it has connected to its neighbours (within about 200 ms of joining) is confirmed by
    // its door alone and waits the full suspicion timeout.
    const e = replica.get(s.subject)
    if (this.#member && e?.suspecters !== undefined && !e.suspecters.has(selfId) &&
      e.suspecters.size <= this.options.timing.suspicionConfirmations && this.#connectedTo(s.subject)) {
      void this.#probeMember(s.subject)
    }
    return 'accept'
  }

  // ---- views: how we see a peer, and what a peer says about us -------------------------------

  #viewOf (peerId: string): View | undefined {
    const e = this.#replica?.get(peerId)
    return e === undefined || e.liveness === 'alive' ? undefined : { l: e.liveness, i: e.downIncarnation ?? e.advert.incarnation }
  }

  #onView (view: View): void {
    if (view.l !== 'alive') this.#refute(view.i)
  }

  readonly #probeContext: ProbeContext = {
    viewOf: (p) => this.#viewOf(p),
    onView: (v) => { this.#onView(v) },
    probeFor: async (target, options) => this.#directProbe(target, this.#awareness.probeTimeout(target), options),
    lose: (from: string) => this.#seam.lose?.('probe', from) === true,
    bytes: this.stats.probeBytes,
  }

  async #onSyncStream (stream: FrameStream, from: string): Promise<void> {
    await this.#bounded(10_000, {}, async (signal) => {
      await serveSync(stream, from, this.#syncContext, { signal })
      await stream.close({ signal }).catch(() => {})
    }).catch((err: Error) => {
      log('sync from %s failed: %s', from, err.message)
      stream.abort(err)
    })
  }

  async #onProbeStream (stream: FrameStream, from: string): Promise<void> {
    // Long-lived: it ends when the prober closes it, the connection dies, or this node stops.
    await serveProbe(stream, from, this.#probeContext, { signal: this.#abort.signal })
      .then(async () => stream.close().catch(() => {}), (err: Error) => { stream.abort(err) })
  }

  // ---- probing (SWIM) --------------------------------------------------------------------------

  #isUp (peerId: string): boolean {
    const l = this.#replica?.get(peerId)?.liveness
    return l === 'alive' || l === 'suspect'
  }

  #connectedTo (peerId: string): boolean {
    return this.#net!.isConnected(peerId)
  }

  /** Members we hold an open connection to: probing and anti-entropy stay on existing connections. */
  #connectedMembers (): string[] {
    return this.#net!.connections().filter((id) => this.#isUp(id) && !this.#denied.has(id))
  }

  #probeTick (): void {
    // Round robin over a shuffled list of neighbours (SWIM), enough per tick that each neighbour is
    // probed once per probePeriodMs; fewer while this node is itself unhealthy (Lifeguard).
    const neighbours = this.#connectedMembers()
    let count = this.#awareness.probesPerTick(neighbours.length)
    let refilled = false
    while (count > 0) {
      if (this.#probeOrder.length === 0) {
        if (refilled) return
        this.#probeOrder = this.#shuffle(neighbours)
        refilled = true
      }
      const id = this.#probeOrder.pop()!
      if (this.#isUp(id) && id !== this.#selfId) { void this.#probeMember(id); count-- }
    }
  }

  async #probeMember (target: string): Promise<void> {
    if (!this.#running || this.#inflightProbes.has(target) || target === this.#selfId) return
    this.#inflightProbes.add(target)
    try {
      const t = this.options.timing
      this.stats.probes++
      if (await this.#directProbe(target, this.#awareness.probeTimeout(target))) {
        this.#awareness.adjust(-1)
        return
      }
      const helpers = this.#shuffle(this.#connectedMembers().filter((p) => p !== target)).slice(0, t.indirectProbes)
      const answers = await Promise.all(helpers.map(async (h) => this.#indirectProbe(h, target, this.#awareness.indirectTimeout(target, h))))
      if (answers.includes('ack')) return
      // Helpers that answered nothing (not even a nack) suggest the slow one is us, not the target.
      if (helpers.length > 0 && answers.every((a) => a === 'none')) this.#awareness.adjust(1)
      if (this.#running && this.#isUp(target)) {
        this.stats.probeFailures++
        await this.#suspect(target)
      }
    } finally {
      this.#inflightProbes.delete(target)
    }
  }

  /** The long-lived probe stream to a neighbour, opened on first use and shared by concurrent probes. */
  async #channel (peerId: string, signal: AbortSignal): Promise<ProbeChannel> {
    const existing = this.#channels.get(peerId)
    if (existing !== undefined) {
      const ch = await existing.catch(() => undefined)
      if (ch?.open === true) return ch
      if (this.#channels.get(peerId) === existing) this.#channels.delete(peerId)
    }
    const opening = this.#openStream(peerId, 'probe', signal)
      .then((stream) => new ProbeChannel(stream, peerId, this.#probeContext))
    this.#channels.set(peerId, opening)
    opening.catch(() => { if (this.#channels.get(peerId) === opening) this.#channels.delete(peerId) })
    return opening
  }

  #dropChannel (peerId: string): void {
    const ch = this.#channels.get(peerId)
    this.#channels.delete(peerId)
    void ch?.then((c) => { c.close() }, () => {})
  }


  async #directProbe (target: string, timeoutMs: number, options: AbortOptions = {}): Promise<boolean> {
    if (this.#denied.has(target)) return false
    return this.#bounded(timeoutMs, options, async (signal) => {
      const channel = await this.#channel(target, signal)
      const sent = this.#clock.now()
      const ok = await channel.ping({ signal })
      if (ok) this.#awareness.recordRtt(target, this.#clock.now() - sent)
      return ok
    }).catch((err: Error) => { log('probe of %s failed: %s', target, err.message); return false })
  }

  async #indirectProbe (helper: string, target: string, timeoutMs: number): Promise<Answer> {
    return this.#bounded(timeoutMs, {}, async (signal) => (await this.#channel(helper, signal)).pingReq(target, { signal }))
      .catch((err: Error): Answer => { log('indirect probe of %s through %s failed: %s', target, helper, err.message); return 'none' })
  }

  async #suspect (target: string): Promise<void> {
    const e = this.replica.get(target)
    if (e === undefined) return
    const merged = this.replica.applySuspect(target, e.advert.incarnation, this.peerId)
    if (merged !== 'started' && merged !== 'confirmed') return
    this.stats.suspicionsRaised++
    log('suspect %s (%s)', target, e.advert.name)
    // Past `suspicionConfirmations` independent voices the timeout is at its minimum everywhere that
    // heard them: one more changes nothing and costs every node a message. When a crash closes a
    // member's sockets, all its neighbours suspect it at once; most of them stay quiet this way.
    const voices = this.replica.get(target)?.suspecters?.size ?? 0
    if (merged === 'confirmed' && voices > this.options.timing.suspicionConfirmations + 1) return
    const msg = { v: ADVERT_SCHEMA_VERSION, mesh: this.options.mesh, subject: target, incarnation: e.advert.incarnation, from: this.peerId, issuedAt: this.#clock.now() }
    const bytes = await encodeMessage('suspect', msg, this.options.mesh, this.#key!)
    await this.#net!.publish(bytes)
      .then((recipients) => { this.stats.gossipBytes.out += bytes.length * recipients })
      .catch((err: Error) => { log('suspect publish failed: %s', err.message) })
  }

  // ---- anti-entropy, joining, connection upkeep ----------------------------------------------

  #antiEntropyTick (): void {
    const peers = this.#connectedMembers().filter((p) => p !== this.peerId)
    const target = peers[Math.floor(this.#random() * peers.length)]
    if (target !== undefined) this.syncWith(target).catch((err: Error) => { log('anti-entropy with %s failed: %s', target, err.message) })
  }

  #maintainTick (): void {
    this.#ticks++
    const o = this.options
    const now = this.#clock.now()
    const connected = this.#connectedMembers()
    if (o.bootstrap.length > 0 && (!this.#joined || connected.length === 0) && now >= this.#nextJoinAt) void this.#tryJoin()
    // Dials still in flight count: on a loaded host they take long, and dialling the deficit again
    // each tick piled up handshakes that made the load worse.
    const deficit = o.minConnections - connected.length - this.#upkeepDials.size
    if (deficit > 0) {
      const have = new Set(connected)
      const candidates = [...this.replica.up()].map((e) => e.advert.peerId).filter((p) => p !== this.peerId && !have.has(p) && !this.#denied.has(p) && !this.#upkeepDials.has(p))
      // The whole deficit at once: a new agent with a single neighbour is probed by one member only.
      for (const p of this.#shuffle(candidates).slice(0, deficit)) void this.#connect(p)
    }
    // Redial one dead member whose backoff expired: this is how a healed partition finds itself again.
    for (const [id, r] of this.#redialAt) {
      if (r.at > now || this.#denied.has(id)) continue
      const e = this.replica.get(id)
      if (e === undefined || this.#isUp(id)) { this.#redialAt.delete(id); continue }
      r.backoff = Math.min(r.backoff * 2, o.timing.redialMaxBackoffMs)
      r.at = now + r.backoff
      this.syncWith(id).catch(() => {})
      break
    }
    if (this.#self !== undefined && now - this.#self.advert.issuedAt > o.timing.maxAdvertAgeMs / 2) {
      this.#issueAdvert(this.#self.advert.incarnation, this.#self.advert.seq + 1).catch((err: Error) => { log.error('advert refresh failed: %s', err.message) })
    }
    if (this.#ticks % 30 === 0) this.replica.gc()
  }

  async #tryJoin (): Promise<void> {
    if (this.#joining || !this.#running) return
    this.#joining = true
    const o = this.options
    const errors: string[] = []
    try {
      for (const addr of this.#shuffle([...o.bootstrap])) {
        try {
          const remote = await this.#bounded(5_000, {}, async (signal) => this.#net!.dialAddress(addr, { signal }))
          if (remote === this.peerId) continue
          await this.syncWith(remote, true)
          this.#joined = true
          this.#joinBackoff = o.timing.joinRetryMs
          this.#readyWaiters.resolve()
          log('joined %s through %s: %d members', o.mesh, addr, this.replica.size)
          this.#maintainTick()
          return
        } catch (err) {
          errors.push(`${addr}: ${(err as Error).message}`)
        }
      }
      this.#nextJoinAt = this.#clock.now() + this.#joinBackoff
      this.#joinBackoff = Math.min(this.#joinBackoff * 2, 5_000)
      if (this.#running) log.error('cannot join mesh %s yet (retrying): %s', o.mesh, errors.join('; '))
    } finally {
      this.#joining = false
    }
  }

  async #connect (peerId: string): Promise<void> {
    this.#upkeepDials.add(peerId)
    try {
      await this.#bounded(5_000, {}, async (signal) => this.#net!.dial(peerId, this.#addrsOf(peerId), { signal }))
    } catch (err) {
      log('dial %s failed: %s', peerId, (err as Error).message)
      // A member we cannot reach may be a neighbour of nobody on our side (after a partition):
      // without this, no one would ever probe it. The probe's indirect path vouches for it if
      // others reach it.
      if (this.#running && this.#member && this.#isUp(peerId)) void this.#probeMember(peerId)
    } finally {
      this.#upkeepDials.delete(peerId)
    }
  }

  async #openStream (peerId: string, protocol: 'sync' | 'probe', signal: AbortSignal): Promise<FrameStream> {
    const net = this.#net
    if (net === undefined || !this.#running) throw new MeshError('MESH_ERR_NOT_STARTED', 'the node is not running')
    return net.open(peerId, protocol, this.#addrsOf(peerId), { signal })
  }

  #addrsOf (peerId: string): readonly string[] {
    return this.#replica?.get(peerId)?.advert.addrs ?? []
  }

  // ---- timers and signals on the injected clock -----------------------------------------------

  /** Opens a stream, runs one exchange on it, and always closes it (aborts it on failure): no stream leaks. */
  async #exchange<T> (peerId: string, timeoutMs: number, options: AbortOptions, fn: (stream: FrameStream, signal: AbortSignal) => Promise<T>): Promise<T> {
    return this.#bounded(timeoutMs, options, async (signal) => {
      const stream = await this.#openStream(peerId, 'sync', signal)
      try {
        const res = await fn(stream, signal)
        await stream.close({ signal }).catch(() => { stream.abort(new Error('close failed')) })
        return res
      } catch (err) {
        stream.abort(err as Error)
        throw err
      }
    })
  }

  /** Runs `fn` with a signal that aborts on stop(), on the caller's signal, or after `timeoutMs`; the timer is always cleared. */
  async #bounded<T> (timeoutMs: number, options: AbortOptions, fn: (signal: AbortSignal) => Promise<T>): Promise<T> {
    const timeout = new AbortController()
    const timer = this.#clock.setTimeout(() => { timeout.abort(new MeshError('MESH_ERR_ABORTED', `timed out after ${timeoutMs} ms`)) }, timeoutMs)
    const signals = [this.#abort.signal, timeout.signal]
    if (options.signal !== undefined) signals.push(options.signal)
    try {
      return await fn(AbortSignal.any(signals))
    } finally {
      this.#clock.clearTimeout(timer)
    }
  }

  #later (ms: number, fn: () => void): void {
    const h = this.#clock.setTimeout(() => {
      this.#timers.delete(h)
      if (this.#running) fn()
    }, ms)
    this.#timers.add(h)
  }

  #loop (intervalMs: number, fn: () => void): void {
    // Jitter the first tick so nodes started together do not probe in lockstep.
    const tick = (): void => {
      try { fn() } catch (err) { log.error('periodic task failed: %s', (err as Error).message) }
      this.#later(intervalMs, tick)
    }
    this.#later(Math.floor(this.#random() * intervalMs), tick)
  }

  #shuffle<T> (arr: T[]): T[] {
    for (let i = arr.length - 1; i > 0; i--) {
      const j = Math.floor(this.#random() * (i + 1))
      ;[arr[i], arr[j]] = [arr[j], arr[i]]
    }
    return arr
  }
}
