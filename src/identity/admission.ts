import { createPrivateKey, sign, verify } from 'node:crypto'
import type { KeyObject } from 'node:crypto'
import { admissionPayload } from '../gossip/admission.ts'
import type { Admitted, Admitter, AdmissionProof } from '../gossip/admission.ts'
import { certsOf, chainVerifier } from './tls.ts'

/** The PEMs a member proves itself with: its SVID (and intermediates), its key, its domain's bundle. */
export interface AdmissionPems {
  certPem: string
  keyPem: string
  bundlePem: string
}

/** What an SVID admitter is built from. */
export interface SvidAdmitterInit {
  mesh: string
  /** The member's identity now (read at each use: renewals take effect at once). */
  current: () => AdmissionPems
  /** The CA certificates (PEM) of a trust domain this member trusts, or undefined. */
  bundleOf: (trustDomain: string) => string | undefined
  /** Whether an identity is revoked (its SPIFFE ID, or the one certificate with this key). */
  revoked?: (spiffeId: string, keyHash: string) => boolean
  now?: () => number
}

/**
 * The mesh's admission with X.509-SVIDs and Node's own crypto. A peer's chain must lead, through
 * CA certificates it sent, to a CA in the bundle of the peer's own trust domain (a partner's CA
 * cannot vouch for a name in ours), every certificate within its validity, the leaf an SVID that
 * is not a CA; and the leaf's key must have signed both peer IDs. Chains are verified once per
 * chain and bundle; the signature at every exchange.
 */
export function svidAdmitter (init: SvidAdmitterInit): Admitter {
  const now = init.now ?? Date.now
  const checkChain = chainVerifier(init.bundleOf)
  let own: { pems: AdmissionPems, chain: string[], key: KeyObject } | undefined

  return {
    prove (prover, verifier): AdmissionProof {
      const pems = init.current()
      if (own?.pems !== pems) {
        own = { pems, chain: certsOf(pems.certPem).map((c) => c.raw.toString('base64')), key: createPrivateKey(pems.keyPem) }
      }
      const data = admissionPayload(init.mesh, prover, verifier)
      const sig = sign(own.key.asymmetricKeyType === 'ec' ? 'sha256' : null, data, own.key)
      return { chain: own.chain, sig: sig.toString('base64') }
    },

    trusts: (admitted) => init.bundleOf(admitted.trustDomain) !== undefined && init.revoked?.(admitted.spiffeId, admitted.keyHash) !== true,

    check (proof, prover, verifier): Admitted | string {
      const v = checkChain(proof.chain)
      if (typeof v === 'string') return v
      const t = now()
      if (t < v.notBefore) return `${v.admitted.spiffeId}'s chain is not valid yet`
      if (t >= v.admitted.notAfter) return `${v.admitted.spiffeId}'s certificate has expired`
      if (init.revoked?.(v.admitted.spiffeId, v.admitted.keyHash) === true) return `${v.admitted.spiffeId} is revoked`
      const data = admissionPayload(init.mesh, prover, verifier)
      let ok = false
      try {
        ok = verify(v.key.asymmetricKeyType === 'ec' ? 'sha256' : null, data, v.key, Buffer.from(proof.sig, 'base64'))
      } catch { /* a malformed signature is a failed one */ }
      return ok ? v.admitted : `${v.admitted.spiffeId}'s key did not sign this connection's peer IDs (a replayed or borrowed certificate)`
    },
  }
}
