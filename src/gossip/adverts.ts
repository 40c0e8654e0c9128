import { logger } from '../telemetry/log.ts'
import type { Logger } from '../telemetry/log.ts'
import type { PrivateKey } from '@libp2p/interface'
import type { GossipOptions } from '../config.ts'
import { MeshError } from '../errors.ts'
import { AdvertSchema, ADVERT_SCHEMA_VERSION } from '../topology/advert.ts'
import type { Advert, AdvertInput } from '../topology/advert.ts'
import { endpointProblem } from '../topology/endpoint.ts'
import type { Replica } from '../topology/replica.ts'
import { encodeMessage } from './codec.ts'
import type { Awareness } from './awareness.ts'
import type { View } from './frames.ts'
import type { MeshNet } from './net.ts'
import type { TaskScope } from './scope.ts'
import type { GossipStats } from './stats.ts'

const log = logger('mesh:gossip')

/** What an agent puts in its advert; the mesh stamps identity, mesh, versions and addresses. */
export type AdvertBody = Pick<AdvertInput, 'tools' | 'dependencies' | 'endpoint' | 'status' | 'identity' | 'zone'>

/** This node's own advert as signed, with its version (what sync pushes and compares). */
export interface SelfAdvert { advert: Advert, envelope: Uint8Array }

/** What the advert publisher is built from. */
export interface AdvertsInit {
  options: GossipOptions
  key: PrivateKey
  net: MeshNet
  replica: Replica
  scope: TaskScope
  awareness: Awareness
  stats: GossipStats
  body: AdvertBody
}

/** Gossipsub drops a publish for a peer whose outbound stream is not open yet: retries of a publish that reached nobody. */
const MAX_PUBLISH_RETRIES = 20

/**
 * This node's own advert: issuing it (signed, within the size limit), publishing it once a peer
 * has subscribed, refreshing it before it ages out, refuting suspicions with a higher incarnation,
 * and the signed leave.
 */
export class Adverts {
  /** Its lines carry the agent's name: several nodes may share a process. */
  readonly #log: Logger
  readonly #i: AdvertsInit
  #body: AdvertBody
  #self?: SelfAdvert
  #publishPending = false
  #publishRetries = 0

  constructor (init: AdvertsInit) {
    this.#log = log.child({ agent: init.options.name })
    this.#i = init
    this.#body = init.body
  }

  /** The current signed advert (undefined before the first issue, and for observers). */
  get self (): SelfAdvert | undefined {
    return this.#self
  }

  /** Issues the first advert of this incarnation (the start time). */
  async start (): Promise<void> {
    await this.#issue(this.#i.scope.clock.now(), 0)
  }

  /** Replaces the body, bumps the sequence and gossips it. */
  async update (body: AdvertBody): Promise<void> {
    this.#body = body
    if (this.#self === undefined || !this.#i.scope.running) return
    await this.#issue(this.#self.advert.incarnation, this.#self.advert.seq + 1)
  }

  /** A peer subscribed to the topic: a publish that found nobody can go out now. */
  onSubscribed (): void {
    if (this.#publishPending) void this.#publish()
  }

  /** Re-issues the advert (seq + 1) once it is half the maximum age, so it never ages out. */
  refreshIfOld (): void {
    const self = this.#self
    if (self === undefined || this.#i.scope.clock.now() - self.advert.issuedAt <= this.#i.options.timing.maxAdvertAgeMs / 2) return
    this.#issue(self.advert.incarnation, self.advert.seq + 1).catch((err: Error) => { this.#log.error('advert refresh failed: %s', err) })
  }

  /** A peer told us how it sees us: anything but alive is refuted. */
  onView (view: View): void {
    if (view.l !== 'alive') this.refute(view.i)
  }

  /**
   * Someone holds our current incarnation as suspect or dead: refute with a higher one.
   * A claim about an incarnation we never had is ignored (a liar cannot push our counter to the
   * end of the safe integers); only an advert signed by our own key may raise us past it.
   */
  refute (theirIncarnation: number, signedByUs = false): void {
    const own = this.#self?.advert.incarnation
    if (!this.#i.scope.running || own === undefined || theirIncarnation < own) return
    if (theirIncarnation > own && !signedByUs) return
    const next = Math.max(this.#i.scope.clock.now(), theirIncarnation + 1)
    if (!Number.isSafeInteger(next)) return
    this.#i.stats.refutations++
    this.#i.awareness.adjust(1)
    this.#log('refuting incarnation %d with %d', theirIncarnation, next)
    this.#issue(next, 0).catch((err: Error) => { this.#log.error('refutation failed: %s', err) })
  }

  /** Best effort: a signed leave lets every replica drop us at once instead of after a suspicion. */
  async leave (): Promise<void> {
    const self = this.#self
    if (self === undefined) return
    const o = this.#i.options
    const leave = { v: ADVERT_SCHEMA_VERSION, mesh: o.mesh, peerId: this.#i.net.peerId, incarnation: self.advert.incarnation, issuedAt: this.#i.scope.clock.now() }
    const bytes = await encodeMessage('leave', leave, o.mesh, this.#i.key)
    await this.#i.net.publish(bytes).catch(() => {})
  }

  async #issue (incarnation: number, seq: number): Promise<void> {
    const { options: o, net, replica } = this.#i
    const parsed = AdvertSchema.safeParse({
      ...this.#body,
      v: ADVERT_SCHEMA_VERSION,
      mesh: o.mesh,
      name: o.name,
      role: o.role,
      peerId: net.peerId,
      incarnation,
      seq,
      issuedAt: this.#i.scope.clock.now(),
      addrs: net.addrs().slice(0, 16),
    })
    if (!parsed.success) throw new MeshError('MESH_ERR_ADVERT_INVALID', `this agent's advert is invalid: ${parsed.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; ')}`, { details: { issues: parsed.error.issues } })
    const endpoint = parsed.data.endpoint
    const problem = endpoint === undefined ? undefined : endpointProblem(endpoint, parsed.data.addrs)
    if (problem !== undefined) {
      // Peers would drop the advert, and no one could call this agent: fail at start instead.
      throw new MeshError('MESH_ERR_CONFIG_INVALID', `this agent's MCP endpoint ${endpoint} cannot be called by peers: ${problem}. Set http.announceHost (MCP_MESH_HTTP_ANNOUNCE_HOST) to a host among the announced libp2p addresses (announce, MCP_MESH_ANNOUNCE), or announce the endpoint's host`, { details: { fields: ['http.announceHost', 'announce'], endpoint, addrs: parsed.data.addrs } })
    }
    const envelope = await encodeMessage('advert', parsed.data, o.mesh, this.#i.key)
    if (envelope.length > o.quota.maxMessageBytes) throw new MeshError('MESH_ERR_WIRE_TOO_LARGE', `this agent's advert is ${envelope.length} bytes; the limit is ${o.quota.maxMessageBytes} (fewer tools or smaller schemas)`)
    this.#self = { advert: parsed.data, envelope }
    replica.applyAdvert(parsed.data, envelope)
    await this.#publish()
  }

  async #publish (): Promise<void> {
    const { net, stats } = this.#i
    // The first publish after connecting reaches nobody until subscriptions are exchanged: wait for one.
    if (net.subscribers() === 0) {
      this.#publishPending = true
      return
    }
    this.#publishPending = false
    const self = this.#self!
    try {
      const recipients = await net.publish(self.envelope)
      stats.gossipBytes.out += self.envelope.length * recipients
      stats.published++
      // Gossipsub drops a message silently for a peer whose outbound stream is not open yet (just
      // connected): none sent means none published. Retry soon, as a new sequence (the same bytes
      // would be a duplicate), a bounded number of times; the heartbeat's gossip covers the rest.
      if (recipients === 0 && this.#publishRetries < MAX_PUBLISH_RETRIES) {
        this.#publishRetries++
        this.#i.scope.later(50, () => { void this.#issue(this.#self!.advert.incarnation, this.#self!.advert.seq + 1).catch(() => {}) })
      } else if (recipients > 0) {
        this.#publishRetries = 0
      }
    } catch (err) {
      this.#log('publish failed: %s', (err as Error).message)
      this.#publishPending = true
    }
  }
}
