import type { Advert } from '../topology/advert.ts'
import { certsOf, chainVerifier, identityFacts } from './tls.ts'
import type { Identity } from './provider.ts'

/** What an advert check trusts: the bundles of trusted domains, and the revocations. */
export interface AdvertCheckInit {
  bundleOf: (trustDomain: string) => string | undefined
  isRevoked: (spiffeId: string, keyHash: string) => boolean
  now?: () => number
}

/**
 * Checks the identity an advert claims, wherever the advert came from (its author, or a member
 * relaying it): its chain must lead to a CA of the bundle of the SPIFFE ID's own trust domain,
 * name that ID and hold the key the advert endorses, be within its validity and not revoked.
 * Returns why not. Chains are verified once per chain and bundle (`chainVerifier`).
 */
export function advertIdentityCheck (init: AdvertCheckInit): (advert: Advert) => string | undefined {
  const now = init.now ?? Date.now
  const checkChain = chainVerifier(init.bundleOf)
  return (advert) => {
    const id = advert.identity
    if (id === undefined) return 'it names no identity'
    if (id.chain === undefined) return `${id.id}: its advert carries no certificate chain`
    const v = checkChain(id.chain)
    if (typeof v === 'string') return `${id.id}: ${v}`
    const a = v.admitted
    if (a.spiffeId !== id.id) return `it claims ${id.id} but its certificate names ${a.spiffeId}`
    if (a.keyHash !== id.key) return `${id.id}: the key it endorses is not its certificate's`
    const t = now()
    if (t < v.notBefore || t >= a.notAfter) return `${id.id}: its certificate is not valid now`
    if (init.isRevoked(a.spiffeId, a.keyHash)) return `${id.id} is revoked`
    return undefined
  }
}

/** What an advert says of `identity`: its SPIFFE ID, key, expiry, and chain (its certificate and intermediates). */
export function advertIdentity (identity: Identity): NonNullable<Advert['identity']> {
  const f = identityFacts(identity)
  return { id: f.spiffeId, key: f.keyHash, exp: f.notAfter, chain: certsOf(identity.certPem).map((c) => c.raw.toString('base64')) }
}
