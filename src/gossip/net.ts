import type { AbortOptions, PrivateKey } from '@libp2p/interface'
import type { GossipOptions } from '../config.ts'

/**
 * The network seam of a gossip node: everything the protocol (adverts, probing, suspicion, sync,
 * connection upkeep) needs from the network, and nothing more. Production runs it on libp2p
 * (`libp2p-net.ts`); the model simulation runs the same node code on a virtual message layer
 * (`test/sim/model`), which is how ten thousand nodes fit on one machine.
 */
export interface MeshNet {
  /** This node's peer ID, derived from its key. */
  readonly peerId: string
  /** Dialable addresses of this node, each ending in `/p2p/<peer id>` (after start). */
  addrs(): string[]
  /** Starts listening and joins the advert topic; `events` receive everything inbound. */
  start(events: NetEvents): Promise<void>
  /** Closes every connection and stream. */
  stop(): Promise<void>
  /** Publishes on the advert topic; resolves to how many peers it was sent to. */
  publish(data: Uint8Array): Promise<number>
  /** Peers subscribed to the advert topic that a publish can reach now. */
  subscribers(): number
  /** Peers this node holds an open connection to. */
  connections(): string[]
  isConnected(peerId: string): boolean
  /** Connects to a peer at its advertised addresses (an open connection is reused). */
  dial(peerId: string, addrs: readonly string[], options: AbortOptions): Promise<void>
  /** Connects to an address whose peer is not known yet (a bootstrap); resolves to its peer ID. */
  dialAddress(addr: string, options: AbortOptions): Promise<string>
  /** Closes every connection to a peer. */
  hangUp(peerId: string): Promise<void>
  /** Checks every admitted peer again: expired or no longer trusted ones are hung up (admission; no-op without). */
  recheck?(): void
  /** Proves this node's (renewed) identity again on every connection (admission; no-op without). */
  reprove?(): Promise<void>
  /** Opens a stream of one of the mesh's request/response protocols, dialling when not connected. */
  open(peerId: string, protocol: MeshProtocol, addrs: readonly string[], options: AbortOptions): Promise<FrameStream>
}

/** The mesh's request/response protocols. */
export type MeshProtocol = 'sync' | 'probe'

/** What a gossip validator tells the topic: forward it, drop it quietly, or drop it and blame the sender. */
export type Verdict = 'accept' | 'ignore' | 'reject'

/** Inbound events a `MeshNet` delivers to its node. */
export interface NetEvents {
  /** Checks one gossip message before it is delivered or forwarded (`signed`: carries a pubsub-level signature, which the mesh refuses). */
  validate(from: string, data: Uint8Array, signed: boolean): Promise<Verdict>
  /** A peer subscribed to the advert topic (a pending publish can go out now). */
  subscribed(): void
  /** The last connection to a peer closed. */
  disconnected(peerId: string): void
  /** A peer opened a stream of one of the mesh's protocols. */
  stream(protocol: MeshProtocol, stream: FrameStream, from: string): void
}

/** One stream as length-prefixed frames. */
export interface FrameStream {
  /** The next frame; rejects with an error named `UnexpectedEOFError` once the remote closed its side. */
  read(options?: AbortOptions): Promise<Uint8Array>
  write(frame: Uint8Array, options?: AbortOptions): Promise<void>
  /** Closes this side gracefully: the remote reads the end of the stream. */
  close(options?: AbortOptions): Promise<void>
  /** Ends the stream at once, both ways. */
  abort(err: Error): void
}

/** The name of the error a `FrameStream` read rejects with at the end of the stream. */
export const END_OF_STREAM = 'UnexpectedEOFError'

/** Peers a test or an operator cuts off: no dials, no inbound connections. */
export interface DenyList {
  has(peerId: string): boolean
}

/** What a network is built from: the node's validated options, its key, and who is cut off. */
export interface NetInit {
  options: GossipOptions
  privateKey: PrivateKey
  deny: DenyList
  /** Largest frame each protocol accepts, in bytes. */
  maxFrameBytes: Record<MeshProtocol, number>
  /** A peer was refused admission, or sent gossip before it was admitted (counted by the node). */
  onRefused?: (peerId: string, reason: string) => void
}

/** Builds (does not start) a node's network. */
export type NetFactory = (init: NetInit) => Promise<MeshNet>
