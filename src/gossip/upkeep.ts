import { logger } from '../telemetry/log.ts'
import type { Logger } from '../telemetry/log.ts'
import type { GossipOptions } from '../config.ts'
import { isMeshError, messageOf } from '../errors.ts'
import type { Replica, ReplicaChange } from '../topology/replica.ts'
import type { AntiEntropy } from './anti-entropy.ts'
import type { Adverts } from './adverts.ts'
import type { MeshNet } from './net.ts'
import type { Peers } from './peers.ts'
import type { Prober } from './prober.ts'
import type { TaskScope } from './scope.ts'

const log = logger('mesh:gossip')

/** What connection upkeep is built from. */
export interface UpkeepInit {
  options: GossipOptions
  net: MeshNet
  replica: Replica
  peers: Peers
  scope: TaskScope
  adverts: Adverts
  prober: Prober
  antiEntropy: AntiEntropy
  /** Resolved by the first successful sync (at once for the first member). */
  ready: PromiseWithResolvers<void>
}

/** A dial may take this long. */
const DIAL_TIMEOUT_MS = 5_000
/** Longest wait between join attempts. */
const MAX_JOIN_BACKOFF_MS = 5_000
/** Dead members are first redialled this long after they died. */
const FIRST_REDIAL_MS = 1_000
/** Dead and left members are forgotten every this many upkeep ticks (their tombstones expired). */
const GC_EVERY_TICKS = 30

/**
 * Joining and staying connected: the join through a bootstrap or any member (with backoff until
 * one answers), dialling random members while below `minConnections`, redialling dead members
 * (how a healed partition finds itself), refreshing our advert before it ages out, and the
 * replica's garbage collection.
 */
export class Upkeep {
  /** Its lines carry the agent's name: several nodes may share a process. */
  readonly #log: Logger
  readonly #i: UpkeepInit
  #joined = false
  #joining = false
  #joinBackoff: number
  #nextJoinAt = 0
  /** Upkeep dials in flight. */
  readonly #dials = new Set<string>()
  readonly #redialAt = new Map<string, { at: number, backoff: number }>()
  #ticks = 0

  constructor (init: UpkeepInit) {
    this.#log = log.child({ agent: init.options.name })
    this.#i = init
    this.#joinBackoff = init.options.timing.joinRetryMs
  }

  /** Joins through the bootstraps, or is ready at once when there are none (the first member). */
  start (): void {
    if (this.#i.options.bootstrap.length === 0) {
      this.#joined = true
      this.#i.ready.resolve()
    } else {
      void this.#tryJoin()
    }
  }

  /** Schedules the redial of members that died or left; forgets it when they are back. */
  onChange (c: ReplicaChange): void {
    if ((c.after === 'dead' || c.after === 'left') && c.before !== undefined) this.#redialAt.set(c.peerId, { at: this.#i.scope.clock.now() + FIRST_REDIAL_MS, backoff: FIRST_REDIAL_MS })
    if (c.after === 'alive') this.#redialAt.delete(c.peerId)
  }

  tick (): void {
    this.#ticks++
    const { options: o, peers, replica, scope } = this.#i
    const now = scope.clock.now()
    const connected = peers.neighbours()
    if (o.bootstrap.length > 0 && (!this.#joined || connected.length === 0) && now >= this.#nextJoinAt) void this.#tryJoin()
    // Dials still in flight count: on a loaded host they take long, and dialling the deficit again
    // each tick piled up handshakes that made the load worse.
    const deficit = o.minConnections - connected.length - this.#dials.size
    if (deficit > 0) {
      const have = new Set(connected)
      const candidates = [...replica.up()].map((e) => e.advert.peerId).filter((p) => p !== peers.selfId && !have.has(p) && !peers.isDenied(p) && !this.#dials.has(p))
      // The whole deficit at once: a new agent with a single neighbour is probed by one member only.
      for (const p of scope.shuffle(candidates).slice(0, deficit)) void this.#connect(p)
    }
    // Redial one dead member whose backoff expired: this is how a healed partition finds itself again.
    for (const [id, r] of this.#redialAt) {
      if (r.at > now || peers.isDenied(id)) continue
      const e = replica.get(id)
      if (e === undefined || peers.isUp(id)) { this.#redialAt.delete(id); continue }
      r.backoff = Math.min(r.backoff * 2, o.timing.redialMaxBackoffMs)
      r.at = now + r.backoff
      this.#i.antiEntropy.syncWith(id).catch(() => {})
      break
    }
    this.#i.adverts.refreshIfOld()
    if (this.#ticks % GC_EVERY_TICKS === 0) replica.gc()
  }

  async #tryJoin (): Promise<void> {
    const { options: o, scope, net } = this.#i
    if (this.#joining || !scope.running) return
    this.#joining = true
    const errors: string[] = []
    try {
      for (const addr of scope.shuffle([...o.bootstrap])) {
        try {
          const remote = await scope.bounded(DIAL_TIMEOUT_MS, {}, async (signal) => net.dialAddress(addr, { signal }))
          if (remote === net.peerId) continue
          await this.#i.antiEntropy.syncWith(remote, true)
          this.#joined = true
          this.#joinBackoff = o.timing.joinRetryMs
          this.#i.ready.resolve()
          this.#log('joined %s through %s: %d members', o.mesh, addr, this.#i.replica.size)
          this.tick()
          return
        } catch (err) {
          errors.push(`${addr}: ${messageOf(err)}`)
        }
      }
      this.#nextJoinAt = scope.clock.now() + this.#joinBackoff
      this.#joinBackoff = Math.min(this.#joinBackoff * 2, MAX_JOIN_BACKOFF_MS)
      if (scope.running) this.#log.warn('cannot join mesh %s yet (retrying): %s', o.mesh, errors.join('; '))
    } finally {
      this.#joining = false
    }
  }

  async #connect (peerId: string): Promise<void> {
    const { scope, peers } = this.#i
    this.#dials.add(peerId)
    try {
      await scope.bounded(DIAL_TIMEOUT_MS, {}, async (signal) => peers.dial(peerId, signal))
    } catch (err) {
      this.#log('dial %s failed: %s', peerId, (err as Error).message)
      if (isMeshError(err, 'MESH_ERR_DIAL_LIMITED')) return // not tried: says nothing about the member
      // A member we cannot reach may be a neighbour of nobody on our side (after a partition):
      // without this, no one would ever probe it. The probe's indirect path vouches for it if
      // others reach it.
      if (scope.running && peers.isUp(peerId)) void this.#i.prober.probe(peerId)
    } finally {
      this.#dials.delete(peerId)
    }
  }
}
