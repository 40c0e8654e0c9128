import { MeshError } from '../errors.ts'
import type { Admitter } from '../gossip/admission.ts'
import type { Notices } from '../gossip/notices.ts'
import type { Identity, IdentityProvider } from './provider.ts'
import { memberAdmitter, startIdentity } from './start.ts'
import type { IdentityInit } from './start.ts'
import { TrustStore } from './trust.ts'
import { advertIdentityCheck } from './advert-check.ts'
import type { Advert } from '../topology/advert.ts'

/**
 * A mesh member's identity, as agents and bootstraps hold it: the provider of its SVID, the trust
 * store of its domain and its registered entities, and what its gossip node needs of both (the
 * admitter, the revocations as notices). Built before the gossip node (which takes the admitter),
 * started after it exists (the local CA endorses the node's libp2p key).
 */
export class MemberIdentity {
  readonly trust: TrustStore
  readonly admitter: Admitter
  readonly notices: Notices
  /** Why an advert's identity is not trusted, or undefined. */
  readonly checkAdvert: (advert: Advert) => string | undefined
  readonly #init: IdentityInit
  #provider?: IdentityProvider

  constructor (init: IdentityInit & { mesh: string }) {
    this.#init = init
    this.trust = new TrustStore({ home: init.home, trustDomain: init.tls.trustDomain, ownBundle: () => this.current().bundlePem })
    const trust = this.trust
    this.admitter = memberAdmitter(init.mesh, { bundleOf: (td) => trust.bundleOf(td), isRevoked: (id, key) => trust.isRevoked(id, key) }, () => this.current())
    this.notices = trust.notices
    this.checkAdvert = advertIdentityCheck({ bundleOf: (td) => trust.bundleOf(td), isRevoked: (id, key) => trust.isRevoked(id, key), ...(init.clock === undefined ? {} : { now: () => init.clock!.now() }) })
  }

  /** The identity now (renewals replace it). */
  current (): Identity {
    if (this.#provider === undefined) throw new MeshError('MESH_ERR_NOT_STARTED', 'the identity has not been started')
    return this.#provider.current()
  }

  /** Takes the first identity from the provider, then reads and follows the trust store. */
  async start (): Promise<Identity> {
    this.#provider ??= await startIdentity(this.#init)
    try {
      await this.trust.start()
    } catch (err) {
      await this.#provider.stop()
      throw err
    }
    return this.#provider.current()
  }

  /** Called with each renewed identity. */
  onRenew (listener: (next: Identity) => void): void {
    this.#provider?.onChange(listener)
  }

  /** Called after each change of trust: an entity registered or revoked, an identity revoked. */
  onTrustChange (listener: () => void): void {
    this.trust.onChange(listener)
  }

  async stop (): Promise<void> {
    this.trust.stop()
    await this.#provider?.stop()
  }
}
