/**
 * What an identity's certificate says, as the mesh uses it. Plain data, so that providers that
 * check certificates with Node's own crypto need no X.509 library (see `checkIdentity`).
 */
export interface IdentityFacts {
  spiffeId: string
  trustDomain: string
  /** DNS and IP SANs. */
  hosts: string[]
  /** When the certificate (and every intermediate CA certificate sent with it) becomes valid. */
  notBefore: Date
  /** When the certificate, or an intermediate sent with it, expires: renewals are timed by it. */
  notAfter: Date
  /** The peer ID whose libp2p key endorsed the certificate's key (SVIDs the local CA issues). */
  peerId?: string
}

/** The identity an agent serves and calls with: its X.509-SVID, key and trust bundle, as PEM. */
export interface Identity {
  spiffeId: string
  certPem: string
  keyPem: string
  /** Where the private key is kept on disk (0600). */
  keyPath: string
  /** The CA certificates of the agent's own trust domain. */
  bundlePem: string
  /** What the certificate says (checked against the X.509-SVID rules). */
  facts: IdentityFacts
}

/**
 * Where an agent's identity comes from (`MCP_MESH_TLS_PROVIDER`): `auto` issues it from the local
 * CA, `file` reads it from certificate files. `current` is always a valid identity; `onChange`
 * tells of each new one (a renewal, a file rewritten), and `stop` ends the renewals and watches
 * and removes the keys the provider wrote.
 */
export interface IdentityProvider {
  readonly kind: 'auto' | 'file' | 'vault' | 'spire'
  current(): Identity
  /** Subscribes to new identities; returns the unsubscribe function. */
  onChange(listener: (identity: Identity) => void): () => void
  stop(): Promise<void>
}

/** The listeners of a provider, and telling them of a new identity. */
export class IdentityListeners {
  readonly #listeners = new Set<(identity: Identity) => void>()

  add (listener: (identity: Identity) => void): () => void {
    this.#listeners.add(listener)
    return () => { this.#listeners.delete(listener) }
  }

  emit (identity: Identity): void {
    for (const l of this.#listeners) l(identity)
  }
}
