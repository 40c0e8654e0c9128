import { createHash } from 'node:crypto'
import { mkdir } from 'node:fs/promises'
import { watch } from 'node:fs'
import type { FSWatcher } from 'node:fs'
import { logger } from '../telemetry/log.ts'
import { entitiesDir, listEntities } from './entities.ts'
import type { Entity } from './entities.ts'
import { isRevoked, keepRevocation, listRevocations, revocationDigest, revokedDir, RevocationSchema, signedByBundle } from './revocations.ts'
import type { Revocation } from './revocations.ts'
import { parseSpiffeId } from './spiffe-id.ts'
import { MAX_NOTICES } from '../gossip/notices.ts'
import type { Notices } from '../gossip/notices.ts'

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
  /** Read from the home's files (trusted as the home is) and learnt from peers (each signed by its domain's CA). */
  #revoked: Revocation[] = []
  readonly #learnt = new Map<string, Revocation>()
  #all: Revocation[] = []
  /** The revocations that travel: signed by a CA of their domain, checked; encoded, by digest. */
  #shared = new Map<string, string>()
  #sharedDigest = ''
  readonly #listeners = new Set<() => void>()
  readonly #noticeListeners = new Set<() => void>()
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
      w.on('error', (err) => { log.error('watching %s failed: %s', dir, err) })
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
    return this.#all.length > 0 && isRevoked(this.#all, spiffeId, keyHash)
  }

  /**
   * The revocations as the gossip's notices: members exchange them in every sync, so one signed
   * by a CA reaches every member, and a member that joins later gets them with its first sync.
   * Each is checked against the bundle of the revoked identity's own domain: a partner cannot
   * revoke our identities, nor a member forge a revocation.
   */
  readonly notices: Notices = {
    digest: () => this.#sharedDigest,
    list: () => [...this.#shared.values()],
    offer: (items) => {
      let accepted = 0
      let dropped = 0
      for (const item of items) {
        const r = this.#parse(item)
        if (r === undefined) { dropped++; continue }
        const d = revocationDigest(r)
        // Known ones are not verified again: a peer whose set differs sends it whole.
        if (this.#shared.has(d) || this.#learnt.has(d)) continue
        if (!this.#signed(r)) { dropped++; continue }
        this.#learnt.set(d, r)
        accepted++
        keepRevocation(this.#init.home, r).catch((err: Error) => { log.error('keeping a revocation of %s failed: %s', r.spiffeId, err) })
        log('revocation of %s learnt from the mesh', r.spiffeId)
      }
      if (accepted > 0) this.#changed()
      return { accepted, dropped }
    },
    onNew: (listener) => {
      this.#noticeListeners.add(listener)
      return () => { this.#noticeListeners.delete(listener) }
    },
  }

  /** A revocation from a peer, when it is one (JSON, a SPIFFE ID). */
  #parse (item: string): Revocation | undefined {
    try {
      const parsed = RevocationSchema.safeParse(JSON.parse(item))
      return parsed.success && tdOf(parsed.data.spiffeId) !== '' ? parsed.data : undefined
    } catch {
      return undefined
    }
  }

  /** Whether a CA of the revoked identity's own domain signed `r`. */
  #signed (r: Revocation): boolean {
    const bundle = this.bundleOf(tdOf(r.spiffeId))
    return bundle !== undefined && signedByBundle(r, bundle)
  }

  /** Recomputes what travels; tells the listeners, and the gossip when something new travels. */
  #changed (): void {
    const before = this.#shared
    this.#all = [...this.#revoked, ...this.#learnt.values()]
    const shared = new Map<string, string>()
    for (const r of this.#all) {
      if (shared.size >= MAX_NOTICES) break
      const d = revocationDigest(r)
      if (shared.has(d) || r.sig === undefined) continue
      const bundle = this.bundleOf(tdOf(r.spiffeId))
      if (bundle !== undefined && (this.#learnt.has(d) || signedByBundle(r, bundle))) shared.set(d, JSON.stringify(r))
    }
    this.#shared = new Map([...shared].sort(([a], [b]) => a < b ? -1 : 1))
    this.#sharedDigest = shared.size === 0 ? '' : createHash('sha256').update([...this.#shared.keys()].join(',')).digest('base64url')
    for (const l of this.#listeners) l()
    if ([...shared.keys()].some((d) => !before.has(d))) for (const l of this.#noticeListeners) l()
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
    this.#changed()
  }
}

function tdOf (spiffeId: string): string {
  try {
    return parseSpiffeId(spiffeId).trustDomain
  } catch {
    return ''
  }
}
