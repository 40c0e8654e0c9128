import { logger } from '../telemetry/log.ts'
import type { Clock, TimerHandle } from '../clock.ts'
import type { KeyDir } from './key-dir.ts'
import { IdentityListeners } from './provider.ts'
import type { Identity, IdentityProvider } from './provider.ts'

const log = logger('mesh:identity')

/** A failed renewal is tried again after this (or sooner, a tenth of what is left). */
const RETRY_MS = 30_000

/**
 * A provider that obtains a new identity at start and at each half-life after (the "auto" CA,
 * Vault): a failed renewal is logged and tried again while the current identity lasts. `keys`
 * (where `obtain` writes private keys) is removed on stop, and on a failed start.
 */
export async function renewingProvider (kind: IdentityProvider['kind'], clock: Clock, keys: KeyDir, obtain: () => Promise<Identity>): Promise<IdentityProvider> {
  const listeners = new IdentityListeners()
  let stopped = false
  let timer: TimerHandle | undefined
  const schedule = (ms: number): void => {
    if (!stopped) timer = clock.setTimeout(() => { void renew() }, ms)
  }
  const renew = async (): Promise<void> => {
    timer = undefined
    try {
      const next = await obtain()
      if (stopped) return
      current = next
      listeners.emit(next)
      schedule((next.facts.notAfter.getTime() - clock.now()) / 2)
    } catch (err) {
      if (stopped) return // the key folder went with stop()
      const left = current.facts.notAfter.getTime() - clock.now()
      log.error('renewing the SVID %s failed (%s); the current one is valid for %d s more', current.spiffeId, err, Math.round(left / 1000))
      schedule(Math.max(1_000, Math.min(RETRY_MS, left / 10)))
    }
  }
  let current: Identity
  try {
    current = await obtain()
  } catch (err) {
    await keys.remove()
    throw err
  }
  schedule((current.facts.notAfter.getTime() - clock.now()) / 2)
  return {
    kind,
    current: () => current,
    onChange: (l) => listeners.add(l),
    async stop () {
      stopped = true
      if (timer !== undefined) clock.clearTimeout(timer)
      await keys.remove()
    },
  }
}
