import type { DropReason } from './codec.ts'
import type { ByteCounter } from './frames.ts'

/** Counters a node keeps about its gossip (tests and benchmarks read them). */
export interface GossipStats {
  /** Messages dropped, by reason: each is counted once, at the node that dropped it. */
  dropped: Partial<Record<DropReason, number>>
  /** Gossip messages accepted (they changed the replica and were forwarded). */
  accepted: number
  published: number
  probes: number
  probeFailures: number
  /** Probes that proved nothing: their timeout was decided late, behind this node's own backlog. */
  probesLate: number
  /** Probes saved by the ack of a direct ping that came after its timeout, during the indirect phase. */
  lateAcks: number
  suspicionsRaised: number
  refutations: number
  syncs: number
  syncBytes: ByteCounter
  /**
   * Gossip payload: bytes of messages this node validated (in), and of its own publications times
   * the peers they went to (out). Gossipsub's forwarding and control traffic are not included.
   */
  gossipBytes: ByteCounter
  probeBytes: ByteCounter
  /**
   * Requests from peers refused by their quota (sync exchanges, probe frames left unanswered), and
   * peers refused admission (no proof in time, an untrusted or invalid SVID, gossip before admission).
   */
  refused: { sync: number, probe: number, admission: number }
  /** Notices (revocations) taken from peers, and dropped (a signature that does not verify, a domain not trusted). */
  notices: { accepted: number, dropped: number }
}

/** Fresh counters, all zero. */
export function newGossipStats (): GossipStats {
  return { dropped: {}, accepted: 0, published: 0, probes: 0, probeFailures: 0, probesLate: 0, lateAcks: 0, suspicionsRaised: 0, refutations: 0, syncs: 0, syncBytes: { in: 0, out: 0 }, gossipBytes: { in: 0, out: 0 }, probeBytes: { in: 0, out: 0 }, refused: { sync: 0, probe: 0, admission: 0 }, notices: { accepted: 0, dropped: 0 } }
}

/**
 * Counts one dropped message; returns what gossipsub should do with it: `reject` (the sender is
 * penalised) for what no honest node forwards, `ignore` for what an honest node of an older
 * version, or one a little behind, might.
 */
export function countDrop (stats: GossipStats, reason: DropReason): 'ignore' | 'reject' {
  stats.dropped[reason] = (stats.dropped[reason] ?? 0) + 1
  return reason === 'quota' || reason === 'too-old' || reason === 'future' || reason === 'unknown-sender' || reason === 'member-cap' || reason === 'resigned' || reason === 'bad-endpoint' || reason === 'untrusted' ? 'ignore' : 'reject'
}
