import { mkdir } from 'node:fs/promises'
import { watch } from 'node:fs'
import type { FSWatcher } from 'node:fs'
import { logger } from '@libp2p/logger'
import { entitiesDir, listEntities } from './entities.ts'
import type { Entity } from './entities.ts'
import { isRevoked, listRevocations, revokedDir } from './revocations.ts'
import type { Revocation } from './revocations.ts'

const log = logger('mesh:identity')

/** What a trust store is built from. */
export interface TrustStoreInit {
  home: string
  /** This member's trust domain. */
  trustDomain: string
  /** Its bundle now (from the identity provider: renewals and rollovers change it). */
  ownBundle: () => string
}

/**
 * The trust bundles of a member: its own domain's, from its identity provider, and one per
 * registered entity (federation), read from `<home>/entities` and followed while the member runs,
 * so a registration or a revoke takes effect without a restart. Each peer is checked against the
 * bundle of its own trust domain only.
 */
export class TrustStore {
  readonly trustDomain: string
  readonly #init: TrustStoreInit
  #partners = new Map<string, Entity>()
  #revoked: Revocation[] = []
  readonly #listeners = new Set<() => void>()
  #watchers: FSWatcher[] = []
  #reading?: Promise<void>
  #again = false

  constructor (init: TrustStoreInit) {
    this.trustDomain = init.trustDomain
    this.#init = init
  }

  /** Reads the entities, then follows the folder until `stop()`. */
  async start (): Promise<void> {
    const dirs = [entitiesDir(this.#init.home), revokedDir(this.#init.home)]
    for (const dir of dirs) await mkdir(dir, { recursive: true, mode: 0o700 })
    await this.#read()
    this.#watchers = dirs.map((dir) => {
      const w = watch(dir, () => { void this.reload() })
      w.on('error', (err) => { log.error('watching %s failed: %s', dir, err.message) })
      w.unref()
      return w
    })
  }

  stop (): void {
    for (const w of this.#watchers) w.close()
    this.#watchers = []
  }

  /** Whether an identity (its SPIFFE ID, and the key its certificate holds) is revoked. */
  isRevoked (spiffeId: string, keyHash?: string): boolean {
    return this.#revoked.length > 0 && isRevoked(this.#revoked, spiffeId, keyHash)
  }

  /** The CA certificates (PEM) a peer of `trustDomain` is checked against, or undefined when not trusted. */
  bundleOf (trustDomain: string): string | undefined {
    if (trustDomain === this.trustDomain) return this.#init.ownBundle()
    return this.#partners.get(trustDomain)?.bundlePem
  }

  /** The registered partner domains. */
  partners (): string[] {
    return [...this.#partners.keys()]
  }

  /** Called after each change of the partners (a registration, a revoke). */
  onChange (listener: () => void): () => void {
    this.#listeners.add(listener)
    return () => { this.#listeners.delete(listener) }
  }

  /** Reads the entities again (the watcher calls it; tests may too). */
  async reload (): Promise<void> {
    if (this.#reading !== undefined) {
      this.#again = true
      return this.#reading
    }
    this.#reading = this.#read().finally(() => { this.#reading = undefined })
    await this.#reading
    if (this.#again) {
      this.#again = false
      await this.reload()
    }
  }

  async #read (): Promise<void> {
    const next = new Map((await listEntities(this.#init.home)).filter((e) => e.trustDomain !== this.trustDomain).map((e) => [e.trustDomain, e]))
    const revoked = await listRevocations(this.#init.home)
    const same = next.size === this.#partners.size && [...next].every(([td, e]) => this.#partners.get(td)?.bundlePem === e.bundlePem) &&
      JSON.stringify(revoked) === JSON.stringify(this.#revoked)
    this.#partners = next
    this.#revoked = revoked
    if (same) return
    log('trusted partner domains: %s; revoked identities: %d', [...next.keys()].join(', ') || 'none', revoked.length)
    for (const l of this.#listeners) l()
  }
}
