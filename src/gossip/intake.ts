import type { GossipOptions } from '../config.ts'
import { compareVersions } from '../topology/advert.ts'
import type { Advert } from '../topology/advert.ts'
import { logger } from '../telemetry/log.ts'
import type { Logger } from '../telemetry/log.ts'
import { endpointProblem } from '../topology/endpoint.ts'
import type { Replica } from '../topology/replica.ts'
import type { Adverts } from './adverts.ts'
import { decodeMessage, dropReason } from './codec.ts'
import type { Verdict } from './net.ts'
import type { Peers } from './peers.ts'
import type { Prober } from './prober.ts'
import { Quota } from './quota.ts'
import type { TaskScope } from './scope.ts'
import { countDrop } from './stats.ts'
import type { GossipStats } from './stats.ts'

const log = logger('mesh:gossip')

function sameBytes (a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && Buffer.compare(a, b) === 0
}

/** What the intake is built from. */
export interface IntakeInit {
  options: GossipOptions
  replica: Replica
  peers: Peers
  scope: TaskScope
  adverts: Adverts
  prober: Prober
  stats: GossipStats
  /** Decodes and verifies a signed message (the model simulation passes a memo). */
  decode: typeof decodeMessage
  /** Fault injection (simulations): true loses this inbound gossip message. */
  lose?: (from: string) => boolean
  /** Why an advert's identity is not trusted (mutual TLS on), or undefined. */
  checkAdvert?: (advert: Advert) => string | undefined
}

/**
 * Everything signed that reaches the node, by gossip or by sync: decoded, verified, checked
 * against quotas and merged into the replica. For gossip it runs in the topic validator, so an
 * invalid message is dropped (and counted) before it is forwarded, never after.
 */
export class Intake {
  /** Its lines carry the agent's name: several nodes may share a process. */
  readonly #log: Logger
  readonly #i: IntakeInit
  readonly #advertQuota: Quota

  constructor (init: IntakeInit) {
    this.#log = log.child({ agent: init.options.name })
    this.#i = init
    const q = init.options.quota
    this.#advertQuota = new Quota({ clock: init.scope.clock, perMinute: q.advertsPerMinute, burst: q.advertBurst })
  }

  /** The gossip topic's validator. `signed`: gossipsub's own signature, which the mesh refuses. */
  async validate (from: string, data: Uint8Array, signed: boolean): Promise<Verdict> {
    if (this.#i.lose?.(from) === true) return 'ignore'
    this.#i.stats.gossipBytes.in += data.length
    if (signed) return countDrop(this.#i.stats, 'malformed')
    return this.receive(data, 'gossip')
  }

  /**
   * Verifies and merges one signed message, from gossip (returns what gossipsub should do with it)
   * or from sync (the same checks and quotas).
   */
  async receive (bytes: Uint8Array, via: 'gossip' | 'sync'): Promise<Verdict> {
    const { options, replica, peers, adverts, stats } = this.#i
    let decoded
    try {
      decoded = await this.#i.decode(bytes, options.mesh, options.quota.maxMessageBytes)
    } catch (err) {
      return countDrop(stats, dropReason(err))
    }
    const selfId = peers.selfId
    if (decoded.kind === 'advert') {
      const a = decoded.payload
      if (a.peerId === selfId) {
        if (compareVersions(a, adverts.self?.advert ?? { incarnation: -1, seq: 0 }) >= 0) adverts.refute(a.incarnation, true)
        return 'ignore'
      }
      const known = replica.get(a.peerId)
      if (known !== undefined) {
        const cmp = compareVersions(a, known.advert)
        // The very message we hold, first seen by sync (a joiner pushes its advert to its door
        // before it gossips it): forward it, or the door would stop its spread. Gossipsub's
        // seen-cache stops loops. The same version signed again (a new issuedAt) is another message
        // to gossipsub, and would be forwarded mesh-wide at no cost to the member's quota: refused.
        if (cmp === 0 && (known.liveness === 'alive' || known.liveness === 'suspect')) {
          return sameBytes(bytes, known.envelope) ? 'accept' : countDrop(stats, 'resigned')
        }
        if (cmp <= 0) return 'ignore'
      }
      // Every caller would POST to this URL: a member may only name a host it announces (SSRF).
      if (a.endpoint !== undefined && endpointProblem(a.endpoint, a.addrs) !== undefined) return countDrop(stats, 'bad-endpoint')
      // Relayed or not, an advert names an identity whose chain leads to a domain we trust.
      const untrusted = this.#i.checkAdvert?.(a)
      if (untrusted !== undefined) {
        this.#log('dropped the advert of %s (%s): %s', a.name, a.peerId, untrusted)
        return countDrop(stats, 'untrusted')
      }
      // By gossip or by sync (a push, a page), a member's changes count against the same quota.
      if (!this.#advertQuota.take(a.peerId)) return countDrop(stats, 'quota')
      const merged = replica.applyAdvert(a, bytes)
      if (merged === 'too-old' || merged === 'future') return countDrop(stats, merged)
      if (merged === 'full') return countDrop(stats, 'member-cap')
      if (merged === 'new' || merged === 'updated' || merged === 'revived') { stats.accepted++; return 'accept' }
      return 'ignore'
    }
    if (decoded.kind === 'leave') {
      const l = decoded.payload
      if (l.peerId === selfId) return 'ignore'
      if (replica.applyLeave(l.peerId, l.incarnation, bytes) === 'left') { stats.accepted++; return 'accept' }
      // A leave we already hold (learnt by sync) is forwarded too, for the same reason as adverts.
      const left = replica.get(l.peerId)
      return left?.liveness === 'left' && left.downIncarnation === l.incarnation && left.leaveEnvelope !== undefined && sameBytes(bytes, left.leaveEnvelope) ? 'accept' : 'ignore'
    }
    if (via === 'sync') return 'ignore' // suspicions travel by gossip only
    const s = decoded.payload
    if (replica.get(s.from) === undefined || !peers.isUp(s.from)) return countDrop(stats, 'unknown-sender')
    if (!this.#advertQuota.take(s.from)) return countDrop(stats, 'quota')
    const merged = replica.applySuspect(s.subject, s.incarnation, s.from, s.k)
    if (merged === 'self') { adverts.refute(s.incarnation); return 'ignore' }
    if (merged !== 'started' && merged !== 'confirmed') return 'ignore'
    stats.accepted++
    this.#i.prober.onSuspicion(s.subject)
    return 'accept'
  }
}
