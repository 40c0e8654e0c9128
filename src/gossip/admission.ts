import { z } from 'zod'

/**
 * Admission to the mesh's own protocols (gossip, sync, probes). After Noise has proven a peer's
 * libp2p key, the peer proves an SVID of a trusted domain bound to that peer ID: its chain, and a
 * signature by the SVID's key over both peer IDs (so it cannot be replayed to another peer or by
 * another key). Everyone else is kept out by the connection gater. The gossip node knows only
 * this interface; `src/identity/admission.ts` implements it with X.509-SVIDs.
 */
export interface Admitter {
  /** The proof this node sends `verifier`. */
  prove(prover: string, verifier: string): AdmissionProof
  /** Checks the proof `prover` sent this node (`verifier`): who it is, or why it is refused. */
  check(proof: AdmissionProof, prover: string, verifier: string): Admitted | string
  /** Whether a peer admitted before is still trusted: its domain (a revoked entity is not), its identity (not revoked). */
  trusts(admitted: Admitted): boolean
}

/** A peer that proved its identity, until its certificate expires. */
export interface Admitted {
  spiffeId: string
  trustDomain: string
  /** SHA-256 of its certificate's public key, base64url (what revocations of one certificate name). */
  keyHash: string
  notAfter: number
}

/** Certificates (DER, base64, leaf first) and the signature over both peer IDs (base64). */
export const AdmissionProofSchema = z.object({
  chain: z.array(z.string().max(8_192)).min(1).max(4),
  sig: z.string().max(512),
})
export type AdmissionProof = z.infer<typeof AdmissionProofSchema>

/** The frames of one admission exchange: the dialer's proof, then the listener's answer. */
export const AdmissionFrame = z.discriminatedUnion('t', [
  z.object({ t: z.literal('proof'), proof: AdmissionProofSchema }),
  z.object({ t: z.literal('refused'), reason: z.string().max(512) }),
])
export type AdmissionFrame = z.infer<typeof AdmissionFrame>

/** The bytes an admission signature covers: a prefix of its own, the mesh, the prover, the verifier. */
export function admissionPayload (mesh: string, prover: string, verifier: string): Buffer {
  return Buffer.from(`mcp-mesh admission v1\0${mesh}\0${prover}\0${verifier}`)
}
