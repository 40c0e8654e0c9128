import { generateKeyPair } from '@libp2p/crypto/keys'
import { logger } from '../telemetry/log.ts'
import type { Logger } from '../telemetry/log.ts'
import type { PrivateKey, AbortOptions } from '@libp2p/interface'
import { parseGossipOptions } from '../config.ts'
import type { GossipOptions, GossipOptionsInput } from '../config.ts'
import { systemClock } from '../clock.ts'
import type { Clock } from '../clock.ts'
import { MeshError } from '../errors.ts'
import type { Advert } from '../topology/advert.ts'
import { Replica } from '../topology/replica.ts'
import type { EntryHash } from '../topology/digest.ts'
import type { HostSeam } from './host.ts'
import { createLibp2pNet } from './libp2p-net.ts'
import type { MeshNet, NetFactory } from './net.ts'
import { decodeMessage } from './codec.ts'
import { holdDefaultKey, loadOrCreateKey } from './keys.ts'
import type { HeldKey } from './keys.ts'
import { MAX_PROBE_FRAME_BYTES } from './probe.ts'
import type { SyncResult } from './sync.ts'
import { Awareness } from './awareness.ts'
import { TaskScope } from './scope.ts'
import { Peers } from './peers.ts'
import { Adverts } from './adverts.ts'
import type { AdvertBody } from './adverts.ts'
import { Prober } from './prober.ts'
import { AntiEntropy } from './anti-entropy.ts'
import { Upkeep } from './upkeep.ts'
import { Intake } from './intake.ts'
import { newGossipStats } from './stats.ts'
import type { Notices } from './notices.ts'
import type { GossipStats } from './stats.ts'

export type { AdvertBody } from './adverts.ts'
export type { GossipStats } from './stats.ts'

const log = logger('mesh:gossip')

/** Pieces tests and simulations replace: the clock, the key, the network, randomness, faults. */
export interface GossipSeam extends Omit<HostSeam, 'deny' | 'admission'> {
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
   * neither merged nor forwarded by this node), a probe ping (it is not answered), or a peer's
   * view of this node in a sync (it is not told it is suspected).
   */
  lose?: (kind: 'gossip' | 'probe' | 'view', from: string) => boolean
  /** Called at the end of `stop()`: what the node was started with and must end with it (an identity provider). */
  release?: () => Promise<void>
  /** Signed statements every member should hold (revocations), exchanged in every sync. */
  notices?: Notices
  /** Why an advert's identity is not trusted, or undefined (mutual TLS on: `src/identity/advert-check.ts`). */
  checkAdvert?: (advert: Advert) => string | undefined
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
  /**
   * The libp2p private key (loaded or created on first use; `start` uses the same): it signs
   * adverts and endorses the node's TLS key.
   */
  privateKey(): Promise<PrivateKey>
  /** Resolves after the first successful sync (at once when there is no bootstrap to join). */
  ready(options?: AbortOptions): Promise<void>
  /** Replaces the advert body, bumps the sequence and gossips it. */
  updateAdvert(body: AdvertBody): Promise<void>
  /** Runs one anti-entropy exchange with a peer (`full`: a whole snapshot). */
  syncWith(peerId: string, full?: boolean, options?: AbortOptions): Promise<SyncResult>
  /** Members this node holds an open connection to: the ones it probes. */
  neighbours(): string[]
  /** Proves this node's renewed identity again to every connected peer (admission). */
  reprove(): Promise<void>
  /** Checks every admitted peer again now (a trust domain was revoked): the untrusted are hung up. */
  recheckAdmissions(): void
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

/** The parts of a started node: each owns its state and timers; the node composes them. */
interface Parts {
  net: MeshNet
  replica: Replica
  peers: Peers
  adverts: Adverts
  prober: Prober
  antiEntropy: AntiEntropy
  upkeep: Upkeep
  intake: Intake
}

/**
 * Composes the gossip node from its parts: `Adverts` (our own advert), `Intake` (validation and
 * merging of everything signed), `Prober` (SWIM failure detection), `AntiEntropy` (sync), and
 * `Upkeep` (joining and connections), over one `MeshNet`, one `Replica` and one `TaskScope`.
 */
class MeshGossip implements GossipNode {
  /** Its lines carry the agent's name: several nodes may share a process. */
  readonly #log: Logger
  readonly options: GossipOptions
  readonly stats: GossipStats = newGossipStats()
  readonly #seam: GossipSeam
  readonly #scope: TaskScope
  readonly #denied = new Set<string>()
  /** Lifeguard's local health and each neighbour's round trip: our timeouts and probe rate. */
  readonly #awareness: Awareness
  #body: AdvertBody
  /** Settled by the first successful sync; exists before start so callers can wait early. */
  readonly #ready = Promise.withResolvers<void>()
  #parts?: Parts
  #held?: HeldKey
  #key?: Promise<PrivateKey>
  #stopping?: Promise<void>
  #unsubscribe?: () => void

  constructor (init: GossipOptionsInput & { advert?: AdvertBody }, seam: GossipSeam) {
    const { advert, ...opts } = init
    this.options = parseGossipOptions(opts)
    this.#log = log.child({ agent: this.options.name })
    this.#body = advert ?? { tools: [] }
    this.#seam = seam
    this.#scope = new TaskScope(seam.clock ?? systemClock, seam.random ?? Math.random)
    this.#awareness = new Awareness(this.options.timing)
  }

  get peerId (): string {
    return this.#parts?.net.peerId ?? ''
  }

  get replica (): Replica {
    if (this.#parts === undefined) throw new MeshError('MESH_ERR_NOT_STARTED', 'the node has not been started: call start() first')
    return this.#parts.replica
  }

  get addrs (): string[] {
    return this.#parts?.net.addrs() ?? []
  }

  get advert (): Advert | undefined {
    return this.#parts?.adverts.self?.advert
  }

  async start (options: AbortOptions = {}): Promise<void> {
    if (this.#parts !== undefined) return
    options.signal?.throwIfAborted()
    const o = this.options
    const seam = this.#seam
    const scope = this.#scope
    const key = await this.privateKey()
    const maxFrameBytes = Math.max(2 * 1024 * 1024, o.quota.maxMessageBytes * 4)
    const stats = this.stats
    const init = {
      options: o, privateKey: key, deny: this.#denied, maxFrameBytes: { sync: maxFrameBytes, probe: MAX_PROBE_FRAME_BYTES },
      onRefused: (peer: string, reason: string) => { stats.refused.admission++; this.#log('refused %s: %s', peer, reason) },
    }
    const net = await (seam.net ?? (async (i) => createLibp2pNet(i, seam)))(init)
    const member = o.role !== 'observer'
    const awareness = this.#awareness
    const replica = new Replica({ selfId: net.peerId, clock: scope.clock, timing: o.timing, maxMembers: o.quota.maxMembers, ...(seam.digestHash === undefined ? {} : { digestHash: seam.digestHash }) })
    const peers = new Peers({ options: o, net, replica, clock: scope.clock, denied: this.#denied, running: () => scope.running })
    const adverts = new Adverts({ options: o, key, net, replica, scope, awareness, stats, body: this.#body })
    const lose = seam.lose
    const prober = new Prober({ options: o, key, net, replica, peers, scope, awareness, adverts, stats, member, ...(lose === undefined ? {} : { lose: (from: string) => lose('probe', from) }) })
    const intake = new Intake({ options: o, replica, peers, scope, adverts, prober, stats, decode: seam.decode ?? decodeMessage, ...(seam.checkAdvert === undefined ? {} : { checkAdvert: seam.checkAdvert }), ...(lose === undefined ? {} : { lose: (from: string) => lose('gossip', from) }) })
    const antiEntropy = new AntiEntropy({ options: o, replica, peers, scope, adverts, prober, stats, maxFrameBytes, ...(lose === undefined ? {} : { lose: (from: string) => lose('view', from) }), ingest: async (env) => { await intake.receive(env, 'sync') }, ...(seam.notices === undefined ? {} : { notices: seam.notices }) })
    const upkeep = new Upkeep({ options: o, net, replica, peers, scope, adverts, prober, antiEntropy, ready: this.#ready })
    this.#parts = { net, replica, peers, adverts, prober, antiEntropy, upkeep, intake }
    replica.onChange((c) => {
      upkeep.onChange(c)
      if (c.after === 'dead' || c.after === 'left') awareness.forget(c.peerId)
    })
    try {
      await net.start({
        validate: async (from, data, signed) => intake.validate(from, data, signed),
        subscribed: () => { adverts.onSubscribed() },
        disconnected: (id) => { prober.onDisconnected(id) },
        stream: (protocol, stream, from) => { void (protocol === 'sync' ? antiEntropy.onStream(stream, from) : prober.onStream(stream, from)) },
      })
      scope.start()
      if (member) await adverts.start()
    } catch (err) {
      await this.stop({ leave: false }) // an advert we cannot issue (or a port we cannot bind) leaves nothing open
      throw err
    }
    upkeep.start()
    scope.loop(o.timing.probeIntervalMs, () => { prober.tick() })
    scope.loop(o.timing.antiEntropyIntervalMs, () => { antiEntropy.tick() })
    scope.loop(o.timing.maintainIntervalMs, () => { upkeep.tick() })
    this.#unsubscribe = seam.notices?.onNew(() => { if (scope.running) antiEntropy.spread() })
    this.#log('started %s (%s) on %s', net.peerId, o.name, this.addrs.join(' '))
  }

  async ready (options: AbortOptions = {}): Promise<void> {
    if (options.signal === undefined) return this.#ready.promise
    const { signal } = options
    signal.throwIfAborted()
    return new Promise((resolve, reject) => {
      const onAbort = (): void => { reject(new MeshError('MESH_ERR_ABORTED', 'waiting for the first sync was aborted', { cause: signal.reason })) }
      signal.addEventListener('abort', onAbort, { once: true })
      this.#ready.promise.then(resolve, reject).finally(() => { signal.removeEventListener('abort', onAbort) })
    })
  }

  async updateAdvert (body: AdvertBody): Promise<void> {
    this.#body = body
    await this.#parts?.adverts.update(body)
  }

  async syncWith (peerId: string, full = false, options: AbortOptions = {}): Promise<SyncResult> {
    if (this.#parts === undefined) throw new MeshError('MESH_ERR_NOT_STARTED', 'the node is not running')
    return this.#parts.antiEntropy.syncWith(peerId, full, options)
  }

  recheckAdmissions (): void {
    this.#parts?.net.recheck?.()
  }

  async reprove (): Promise<void> {
    await this.#parts?.net.reprove?.()
  }

  neighbours (): string[] {
    return this.#scope.running ? this.#parts!.peers.neighbours() : []
  }

  async deny (peerIds: Iterable<string>): Promise<void> {
    const ids = [...peerIds]
    for (const id of ids) this.#denied.add(id)
    const parts = this.#parts
    await Promise.all(ids.map(async (id) => parts?.net.hangUp(id).catch(() => {})))
    // A member we cut off may have no other neighbour on our side to notice: check each one (a
    // member others still reach is vouched for by their indirect probes, and stays alive).
    if (parts !== undefined && this.#scope.running) for (const id of ids) if (parts.peers.isUp(id)) void parts.prober.probe(id)
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
    const parts = this.#parts
    if (parts === undefined) {
      await this.#held?.release() // taken by privateKey() before a start that never came or failed
      await this.#seam.release?.()
      return
    }
    if (leave && this.#scope.running) await parts.adverts.leave()
    this.#unsubscribe?.()
    this.#scope.stop()
    parts.prober.stop()
    parts.replica.stop()
    this.#ready.reject(new MeshError('MESH_ERR_NOT_STARTED', 'the node stopped before its first sync'))
    this.#ready.promise.catch(() => {})
    await parts.net.stop()
    await this.#held?.release()
    await this.#seam.release?.()
    this.#log('stopped %s', this.peerId)
  }

  privateKey (): Promise<PrivateKey> {
    this.#key ??= this.#seam.privateKey === undefined ? this.#loadKey() : Promise.resolve(this.#seam.privateKey)
    return this.#key
  }

  async #loadKey (): Promise<PrivateKey> {
    const o = this.options
    if (o.ephemeralKey) return generateKeyPair('Ed25519')
    if (o.keyFile !== undefined) return loadOrCreateKey(o.keyFile)
    this.#held = await holdDefaultKey(o.home, o.name)
    return this.#held.key
  }
}
