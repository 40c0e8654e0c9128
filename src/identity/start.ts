import type { PrivateKey } from '@libp2p/interface'
import type { Clock } from '../clock.ts'
import type { TlsOptions } from '../config.ts'
import { MeshError } from '../errors.ts'
import type { Admitter } from '../gossip/admission.ts'
import { svidAdmitter } from './admission.ts'
import type { AdmissionPems } from './admission.ts'
import type { IdentityProvider } from './provider.ts'

/** What a member's identity is obtained with. */
export interface IdentityInit {
  tls: TlsOptions
  home: string
  /** `spiffe://<trust-domain>/agent/<name>` for the providers that name it (auto, vault). */
  name: string
  /** Host names and IPs its endpoint is reached at (DNS and IP SANs); none for a bootstrap. */
  hosts: string[]
  /** The libp2p key, which endorses each SVID the local CA issues (auto). */
  libp2pKey: () => Promise<PrivateKey>
  clock?: Clock
}

/**
 * Starts the identity provider `tls.provider` names (its module loaded only then) and checks the
 * first identity is of `tls.trustDomain`. Agents and bootstraps use the same.
 */
export async function startIdentity (init: IdentityInit): Promise<IdentityProvider> {
  const t = init.tls
  const clock = init.clock === undefined ? {} : { clock: init.clock }
  let provider: IdentityProvider
  if (t.provider === 'vault') {
    const { startVaultProvider, vaultInit } = await import('./vault-provider.ts')
    provider = await startVaultProvider({ ...await vaultInit(t, init.name, init.hosts, t.svidTtlMs), ...clock })
  } else if (t.provider === 'spire') {
    const { startSpireProvider } = await import('./spire-provider.ts')
    provider = await startSpireProvider({ socketPath: t.spireSocket!, ...clock })
  } else if (t.provider === 'file') {
    const { startFileProvider } = await import('./file-provider.ts')
    provider = await startFileProvider({ certPath: t.certFile!, keyPath: t.keyFile!, bundlePath: t.bundleFile!, ...clock })
  } else {
    const { startAutoProvider } = await import('./auto-provider.ts')
    provider = await startAutoProvider({ home: init.home, trustDomain: t.trustDomain, name: init.name, hosts: init.hosts, libp2pKey: await init.libp2pKey(), ttlMs: t.svidTtlMs, ...clock })
  }
  const first = provider.current()
  if (!first.spiffeId.startsWith(`spiffe://${t.trustDomain}/`)) {
    await provider.stop()
    throw new MeshError('MESH_ERR_IDENTITY_INVALID', `the identity ${first.spiffeId} is not of the trust domain ${t.trustDomain} (tls.trustDomain, MCP_MESH_TRUST_DOMAIN)`)
  }
  return provider
}

/**
 * The admission of a member whose identity is `current()`: it trusts its own domain's bundle
 * (`trust` a domain name), or the bundles of a trust store (its own and its registered entities').
 */
export function memberAdmitter (mesh: string, trust: string | { bundleOf: (td: string) => string | undefined, isRevoked?: (id: string, keyHash: string) => boolean }, current: () => AdmissionPems): Admitter {
  if (typeof trust === 'string') return svidAdmitter({ mesh, current, bundleOf: (td) => td === trust ? current().bundlePem : undefined })
  return svidAdmitter({ mesh, current, bundleOf: (td) => trust.bundleOf(td), ...(trust.isRevoked === undefined ? {} : { revoked: trust.isRevoked }) })
}
