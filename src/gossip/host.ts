import { createLibp2p } from 'libp2p'
import type { Libp2pOptions } from 'libp2p'
import type { Libp2p, PrivateKey, PeerId } from '@libp2p/interface'
import { tcp } from '@libp2p/tcp'
import { noise } from '@libp2p/noise'
import { yamux } from '@libp2p/yamux'
import { identify } from '@libp2p/identify'
import { gossipsub, StrictNoSign, TopicValidatorResult } from '@libp2p/gossipsub'
import type { GossipSub } from '@libp2p/gossipsub'
import { createHash } from 'node:crypto'
import type { GossipOptions } from '../config.ts'
import type { DenyList, Verdict } from './net.ts'
import type { Admitter } from './admission.ts'

/**
 * The libp2p services the mesh runs. Gossipsub comes from `@libp2p/gossipsub` (the libp2p 3 port);
 * this file is the only place that names it, so switching implementations is a change here.
 */
export type MeshServices = {
  identify: ReturnType<ReturnType<typeof identify>>
  pubsub: GossipSub
}

/** The libp2p node of a mesh member. */
export type MeshHost = Libp2p<MeshServices>

/** Extra pieces of the host that tests and simulations replace (the network seam). */
export interface HostSeam {
  /** Transports and encryption; default TCP and Noise. Simulations pass the in-memory transport. */
  transports?: Libp2pOptions['transports']
  connectionEncrypters?: Libp2pOptions['connectionEncrypters']
  deny?: DenyList
  /**
   * Admission (mutual TLS on): the peers allowed in, and the ones refused recently. Gossipsub
   * sends nothing to a peer not admitted (its score is below the publish threshold), and the
   * gater keeps refused peers out.
   */
  admission?: { admitted: (peerId: string) => boolean, refused: (peerId: string) => boolean }
  /** The admitter that proves this node and checks peers (`src/identity/admission.ts`). */
  admitter?: Admitter
}

/** A validator's verdict as gossipsub's own result. */
export const TOPIC_VERDICT: Record<Verdict, TopicValidatorResult> = {
  accept: TopicValidatorResult.Accept,
  ignore: TopicValidatorResult.Ignore,
  reject: TopicValidatorResult.Reject,
}

/** The gossipsub topic of a mesh: other meshes never share it. */
export function advertTopic (mesh: string): string {
  return `/mcp-mesh/${mesh}/adverts/1`
}

/** Builds (does not start) the libp2p host for these options. */
export async function createHost (opts: GossipOptions, privateKey: PrivateKey, seam: HostSeam = {}): Promise<MeshHost> {
  const deny = seam.deny
  const admission = seam.admission
  const denied = (p: PeerId): boolean => (deny?.has(p.toString()) ?? false) || (admission?.refused(p.toString()) ?? false)
  const scoreParams = {
    ...(opts.colocated ? { IPColocationFactorWeight: 0 } : {}),
    // -60 with the default weight of 10: below the publish (-50) and gossip (-10) thresholds, so
    // nothing is sent to a peer not admitted, and it is not grafted; above the graylist (-80), so
    // its subscriptions are still heard (a member's, sent as its admission completes, would
    // otherwise be lost for good) and its messages reach the validator, which waits for admission.
    ...(admission === undefined ? {} : { appSpecificScore: (p: string) => admission.admitted(p) ? 0 : -6 }),
  }
  const topic = advertTopic(opts.mesh)
  return createLibp2p({
    privateKey,
    start: false,
    addresses: { listen: opts.listen, announce: opts.announce.length > 0 ? opts.announce : undefined },
    transports: seam.transports ?? [tcp()],
    connectionEncrypters: seam.connectionEncrypters ?? [noise()],
    streamMuxers: [yamux()],
    connectionGater: {
      denyDialPeer: denied,
      denyInboundEncryptedConnection: denied,
      denyOutboundEncryptedConnection: denied,
      // Loopback and private addresses are where meshes live: allow dialling them.
      denyDialMultiaddr: () => false,
    },
    connectionManager: {
      // The default (5 inbound connections per second per host) breaks a star around a bootstrap.
      inboundConnectionThreshold: 1_000,
      maxIncomingPendingConnections: 256,
      maxParallelDials: 16,
      maxConnections: 300,
      dialTimeout: 5_000,
    },
    connectionMonitor: { enabled: false },
    services: {
      identify: identify(),
      pubsub: gossipsub({
        // Adverts carry their own end-to-end signature; gossipsub's would double the CPU per message.
        globalSignaturePolicy: StrictNoSign,
        msgIdFn: (msg) => createHash('sha256').update(msg.data).digest().subarray(0, 20),
        allowedTopics: [topic],
        allowPublishToZeroTopicPeers: true,
        maxInboundDataLength: opts.quota.maxMessageBytes + 4096,
        emitSelf: false,
        doPX: opts.role === 'bootstrap',
        scoreParams,
      }),
    },
  }) as Promise<MeshHost>
}
