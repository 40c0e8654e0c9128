import { createHash, X509Certificate } from 'node:crypto'
import type { Advert } from '../topology/advert.ts'
import { certsOf, identityFacts, peerFacts, verifyChain } from './tls.ts'
import type { Verified } from './tls.ts'
import type { Identity } from './provider.ts'

/** What an advert check trusts: the bundles of trusted domains, and the revocations. */
export interface AdvertCheckInit {
  bundleOf: (trustDomain: string) => string | undefined
  isRevoked: (spiffeId: string, keyHash: string) => boolean
  now?: () => number
}

const MAX_CACHED = 4_096

/**
 * Checks the identity an advert claims, wherever the advert came from (its author, or a member
 * relaying it): its chain must lead to a CA of the bundle of the SPIFFE ID's own trust domain,
 * name that ID and hold the key the advert endorses, be within its validity and not revoked.
 * Returns why not. Chains are verified once per chain and bundle.
 */
export function advertIdentityCheck (init: AdvertCheckInit): (advert: Advert) => string | undefined {
  const now = init.now ?? Date.now
  const verified = new Map<string, Verified | string>()
  return (advert) => {
    const id = advert.identity
    if (id === undefined) return 'it names no identity'
    if (id.chain === undefined) return `${id.id}: its advert carries no certificate chain`
    const leaf = peerFacts(Buffer.from(id.chain[0], 'base64'))
    if (typeof leaf === 'string') return leaf
    const bundle = init.bundleOf(leaf.trustDomain)
    if (bundle === undefined) return `${leaf.spiffeId} is of the trust domain ${leaf.trustDomain}, which this member does not trust`
    const key = createHash('sha256').update(id.chain.join('.')).update(bundle).digest('base64')
    let v = verified.get(key)
    if (v === undefined) {
      try {
        v = verifyChain(id.chain.map((c) => new X509Certificate(Buffer.from(c, 'base64'))), bundle)
      } catch (err) {
        v = `its chain is not X.509: ${(err as Error).message}`
      }
      if (verified.size >= MAX_CACHED) verified.delete(verified.keys().next().value!)
      verified.set(key, v)
    }
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
