/**
 * Notices: a small set of signed statements every member of a mesh should hold (revocations), in
 * a form the gossip does not need to understand. Sync carries a digest of each side's set, and
 * the sets themselves when the digests differ; the owner of the set checks each notice (its
 * signature, who may issue it) before taking it. A member that learns a new notice syncs with a
 * few neighbours at once, so a notice spreads like an epidemic instead of waiting for anti-entropy.
 */
export interface Notices {
  /** A digest of the notices held that may travel ('' when none). */
  digest(): string
  /** Every notice held that may travel, encoded. */
  list(): string[]
  /** Takes notices a peer sent: each is checked and the new ones kept. */
  offer(items: readonly string[], from: string): { accepted: number, dropped: number }
  /** Called when the set grows (a notice from a peer, or issued here). */
  onNew(listener: () => void): () => void
}

/** At most this many notices travel in one frame, each at most `MAX_NOTICE_BYTES`. */
export const MAX_NOTICES = 1_024
export const MAX_NOTICE_BYTES = 4_096
