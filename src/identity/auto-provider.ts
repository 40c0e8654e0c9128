import type { PrivateKey } from '@libp2p/interface'
import { logger } from '@libp2p/logger'
import { systemClock } from '../clock.ts'
import type { Clock, TimerHandle } from '../clock.ts'
import { makeKeyDir } from './key-dir.ts'
import { LocalCa } from './local-ca.ts'
import { IdentityListeners } from './provider.ts'
import type { Identity, IdentityProvider } from './provider.ts'
import { checkSvid, DEFAULT_SVID_TTL_MS, issueSvid } from './svid.ts'
import { x509 } from './x509.ts'

const log = logger('mesh:identity')

/** A failed renewal is tried again after this (or sooner, a tenth of what is left). */
const RETRY_MS = 30_000

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
  const listeners = new IdentityListeners()
  let stopped = false
  let timer: TimerHandle | undefined

  const issue = async (): Promise<Identity> => {
    const svid = await issueSvid(ca, { name: init.name, hosts: init.hosts, libp2pKey: init.libp2pKey, ttlMs: init.ttlMs ?? DEFAULT_SVID_TTL_MS, now: clock.now() })
    const facts = await checkSvid(new x509.X509Certificate(svid.certPem))
    return { spiffeId: svid.spiffeId, certPem: svid.certPem, keyPem: svid.keyPem, keyPath: await keys.write('svid.key', svid.keyPem), bundlePem: svid.bundlePem, facts }
  }
  const schedule = (ms: number): void => {
    if (!stopped) timer = clock.setTimeout(() => { void renew() }, ms)
  }
  const renew = async (): Promise<void> => {
    timer = undefined
    try {
      const next = await issue()
      if (stopped) return
      current = next
      listeners.emit(next)
      schedule((next.facts.notAfter.getTime() - clock.now()) / 2)
    } catch (err) {
      if (stopped) return // the key folder went with stop()
      const left = current.facts.notAfter.getTime() - clock.now()
      log.error('renewing the SVID of %s failed (%s); the current one is valid for %d s more', init.name, (err as Error).message, Math.round(left / 1000))
      schedule(Math.max(1_000, Math.min(RETRY_MS, left / 10)))
    }
  }

  let current: Identity
  try {
    current = await issue()
  } catch (err) {
    await keys.remove()
    throw err
  }
  schedule((current.facts.notAfter.getTime() - clock.now()) / 2)
  return {
    kind: 'auto',
    current: () => current,
    onChange: (l) => listeners.add(l),
    async stop () {
      stopped = true
      if (timer !== undefined) clock.clearTimeout(timer)
      await keys.remove()
    },
  }
}
