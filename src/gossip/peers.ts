import { MeshError } from '../errors.ts'
import type { Replica } from '../topology/replica.ts'
import type { FrameStream, MeshNet, MeshProtocol } from './net.ts'
import type { View } from './frames.ts'

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

  constructor (net: MeshNet, replica: Replica, denied: ReadonlySet<string>, running: () => boolean) {
    this.selfId = net.peerId
    this.#net = net
    this.#replica = replica
    this.#denied = denied
    this.#running = running
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

  /** The libp2p addresses a member advertises. */
  addrsOf (peerId: string): readonly string[] {
    return this.#replica.get(peerId)?.advert.addrs ?? []
  }

  /** Opens a stream of one of the mesh's protocols to a member, dialling it when not connected. */
  async open (peerId: string, protocol: MeshProtocol, signal: AbortSignal): Promise<FrameStream> {
    if (!this.#running()) throw new MeshError('MESH_ERR_NOT_STARTED', 'the node is not running')
    return this.#net.open(peerId, protocol, this.addrsOf(peerId), { signal })
  }
}
