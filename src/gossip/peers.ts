import type { Clock } from '../clock.ts'
import type { GossipOptions } from '../config.ts'
import { MeshError } from '../errors.ts'
import type { Replica } from '../topology/replica.ts'
import type { FrameStream, MeshNet, MeshProtocol } from './net.ts'
import type { View } from './frames.ts'
import { Quota } from './quota.ts'

/** What the peers view is built from. */
export interface PeersInit {
  options: GossipOptions
  net: MeshNet
  replica: Replica
  clock: Clock
  /** Peers cut off (tests, partitions): never dialled, never counted as neighbours. */
  denied: ReadonlySet<string>
  running: () => boolean
}

/**
 * The node's view of its peers: which members are up, which it holds a connection to (its
 * neighbours: the ones it probes and syncs with), who is cut off, and how to reach them.
 */
export class Peers {
  readonly selfId: string
  readonly #net: MeshNet
  readonly #replica: Replica
  readonly #denied: ReadonlySet<string>
  readonly #running: () => boolean

  readonly #dials: Quota
  readonly #maxAddrs: number

  constructor (init: PeersInit) {
    this.selfId = init.net.peerId
    this.#net = init.net
    this.#replica = init.replica
    this.#denied = init.denied
    this.#running = init.running
    const q = init.options.quota
    this.#dials = new Quota({ clock: init.clock, perMinute: q.dialsPerMemberPerMinute, burst: Math.min(5, q.dialsPerMemberPerMinute) })
    this.#maxAddrs = q.maxDialAddrs
  }

  /** Alive or suspect in the replica. */
  isUp (peerId: string): boolean {
    const l = this.#replica.get(peerId)?.liveness
    return l === 'alive' || l === 'suspect'
  }

  /** How this node sees a member, when not alive (sent to it by probes and sync, so it can refute). */
  viewOf (peerId: string): View | undefined {
    const e = this.#replica.get(peerId)
    return e === undefined || e.liveness === 'alive' ? undefined : { l: e.liveness, i: e.downIncarnation ?? e.advert.incarnation }
  }

  isDenied (peerId: string): boolean {
    return this.#denied.has(peerId)
  }

  connectedTo (peerId: string): boolean {
    return this.#net.isConnected(peerId)
  }

  /** Members we hold an open connection to: probing and anti-entropy stay on existing connections. */
  neighbours (): string[] {
    return this.#net.connections().filter((id) => this.isUp(id) && !this.#denied.has(id))
  }

  /** The libp2p addresses of a member worth dialling: the first `quota.maxDialAddrs` it advertises. */
  addrsOf (peerId: string): readonly string[] {
    return this.#replica.get(peerId)?.advert.addrs.slice(0, this.#maxAddrs) ?? []
  }

  /** Connects to a member (upkeep); within its dial quota. */
  async dial (peerId: string, signal: AbortSignal): Promise<void> {
    this.#mayDial(peerId)
    await this.#net.dial(peerId, this.addrsOf(peerId), { signal })
  }

  /** Opens a stream of one of the mesh's protocols to a member, dialling it (within its quota) when not connected. */
  async open (peerId: string, protocol: MeshProtocol, signal: AbortSignal): Promise<FrameStream> {
    this.#mayDial(peerId)
    return this.#net.open(peerId, protocol, this.addrsOf(peerId), { signal })
  }

  /** Every dial this node makes to a member counts against its quota: members choose the addresses everyone dials. */
  #mayDial (peerId: string): void {
    if (!this.#running()) throw new MeshError('MESH_ERR_NOT_STARTED', 'the node is not running')
    if (this.#net.isConnected(peerId) || this.#dials.take(peerId)) return
    throw new MeshError('MESH_ERR_DIAL_LIMITED', `${peerId} was dialled too often this minute (quota.dialsPerMemberPerMinute)`, { details: { peerId } })
  }
}
