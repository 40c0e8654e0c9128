import type { PrivateKey } from '@libp2p/interface'
import { systemClock } from '../clock.ts'
import type { Clock } from '../clock.ts'
import { makeKeyDir } from './key-dir.ts'
import { LocalCa } from './local-ca.ts'
import type { IdentityProvider } from './provider.ts'
import { renewingProvider } from './renewing.ts'
import { checkSvid, DEFAULT_SVID_TTL_MS, issueSvid } from './svid.ts'
import { x509 } from './x509.ts'

/** What the "auto" provider needs. */
export interface AutoProviderInit {
  home: string
  trustDomain: string
  /** Agent name: `spiffe://<trust-domain>/agent/<name>`. */
  name: string
  /** Host names and IPs callers use (DNS and IP SANs). */
  hosts: string[]
  /** The agent's libp2p key, which endorses each SVID's key (the libp2p TLS extension). */
  libp2pKey: PrivateKey
  ttlMs?: number
  clock?: Clock
  /** Where the key folder is made (tests); `/dev/shm` by default. */
  keyBase?: string
}

/**
 * The "auto" provider: the local CA (created on first use) issues the agent a short-lived SVID at
 * start, and a new one at each half-life, with a new key each time. Keys are written to a
 * private folder in `/dev/shm` and removed on `stop()`.
 */
export async function startAutoProvider (init: AutoProviderInit): Promise<IdentityProvider> {
  const clock = init.clock ?? systemClock
  const ca = await LocalCa.open(init.home, init.trustDomain, { create: true })
  const keys = await makeKeyDir(init.keyBase)
  return await renewingProvider('auto', clock, keys, async () => {
    const svid = await issueSvid(ca, { name: init.name, hosts: init.hosts, libp2pKey: init.libp2pKey, ttlMs: init.ttlMs ?? DEFAULT_SVID_TTL_MS, now: clock.now() })
    const facts = await checkSvid(new x509.X509Certificate(svid.certPem))
    return { spiffeId: svid.spiffeId, certPem: svid.certPem, keyPem: svid.keyPem, keyPath: await keys.write('svid.key', svid.keyPem), bundlePem: svid.bundlePem, facts }
  })
}
