// The model simulation's shared work. The decoder: the real `decodeMessage`, run once per distinct message. Every
// node that receives the same bytes gets the same decoded object, so ten thousand replicas share
// one copy of each advert. Verification is deterministic in the bytes, so nothing is skipped that
// could change an outcome; its CPU is charged by the model's measured per-hop cost instead.
import { decodeMessage } from '../../../src/gossip/codec.ts'
import type { Decoded } from '../../../src/gossip/codec.ts'
import { sha256Entry } from '../../../src/topology/digest.ts'
import type { EntryHash } from '../../../src/topology/digest.ts'

/** A memoizing `decode` seam: by identity for gossip (same bytes object), by content for sync copies. */
export function memoDecode (): typeof decodeMessage {
  const byRef = new WeakMap<Uint8Array, Decoded>()
  const byContent = new Map<string, Decoded>()
  return async (bytes, mesh, maxBytes) => {
    const hit = byRef.get(bytes)
    if (hit !== undefined) return hit
    const key = `${mesh}\0${maxBytes ?? ''}\0${Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('latin1')}`
    let decoded = byContent.get(key)
    if (decoded === undefined) {
      decoded = await decodeMessage(bytes, mesh, maxBytes) // a failure is not remembered: it throws every time
      byContent.set(key, decoded)
    }
    byRef.set(bytes, decoded)
    return decoded
  }
}

/**
 * A memo of the digest's entry hash: every replica hashes the same member versions. Keyed by peer
 * ID (a string V8 has hashed already), holding that member's last version seen.
 */
export function memoDigestHash (): EntryHash {
  const memo = new Map<string, { incarnation: number, seq: number, hash: Uint8Array }>()
  return (peerId, incarnation, seq) => {
    const m = memo.get(peerId)
    if (m !== undefined && m.incarnation === incarnation && m.seq === seq) return m.hash
    const h = sha256Entry(peerId, incarnation, seq)
    memo.set(peerId, { incarnation, seq, hash: h })
    return h
  }
}
