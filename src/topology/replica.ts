import type { Clock, TimerHandle } from '../clock.ts'
import type { Advert, Liveness, Member } from './advert.ts'
import { compareVersions } from './advert.ts'
import { Digest, bucketOf } from './digest.ts'
import type { EntryHash } from './digest.ts'
import { suspicionTimeout } from './suspicion.ts'

/** The timing a replica needs (a subset of the `timing` options). */
export interface ReplicaTiming {
  suspicionMinTimeoutMs: number
  suspicionMaxTimeoutMs: number
  suspicionConfirmations: number
  maxAdvertAgeMs: number
  maxClockSkewMs: number
  tombstoneMs: number
}

/** Options of a replica. */
export interface ReplicaInit {
  /** This node's peer ID: it never suspects or declares itself dead. */
  selfId: string
  clock: Clock
  timing: ReplicaTiming
  /** The digest's entry hash (default SHA-256); the model simulation shares a memo of it across nodes. */
  digestHash?: EntryHash
  /**
   * Members held at most, tombstones included (default unlimited). At the cap a new member first
   * takes the place of the oldest tombstone; with none to forget it is refused (`full`).
   */
  maxMembers?: number
}

/** One member as held in the replica, with the signed bytes it arrived in (relayed by sync). */
export interface ReplicaEntry extends Member {
  readonly envelope: Uint8Array
  /** The signed leave, once the member left (relayed by sync so the leave cannot be undone). */
  readonly leaveEnvelope?: Uint8Array
  /** For dead and left members: the incarnation they died or left in, and when. */
  readonly downIncarnation?: number
  readonly downAt?: number
  /** While suspect: who confirmed the suspicion. */
  readonly suspecters?: ReadonlySet<string>
  /** While suspect: the confirmations that bring its timeout to the minimum (see `applySuspect`). */
  readonly expectedConfirmations?: number
}

/** A liveness or advert change, as listeners see it. */
export interface ReplicaChange {
  peerId: string
  before: Liveness | undefined
  after: Liveness
  advert: Advert
  /** True when the advert itself changed (new incarnation or sequence). */
  advertChanged: boolean
}

/** What happened to an advert offered to the replica. */
export type AdvertMerge = 'new' | 'updated' | 'revived' | 'duplicate' | 'stale' | 'tombstoned' | 'too-old' | 'future' | 'full'
/** What happened to a suspicion offered to the replica. */
export type SuspectMerge = 'self' | 'started' | 'confirmed' | 'duplicate' | 'stale' | 'ahead' | 'unknown'
/** What happened to a leave offered to the replica. */
export type LeaveMerge = 'left' | 'stale' | 'unknown'

interface MutableEntry {
  advert: Advert
  envelope: Uint8Array
  liveness: Liveness
  leaveEnvelope?: Uint8Array
  downIncarnation?: number
  downAt?: number
  suspecters?: Set<string>
  expectedConfirmations?: number
  /** The largest number of confirmations any suspecter claimed; undefined when none said. */
  claimedConfirmations?: number
  suspectIncarnation?: number
  suspectSince?: number
  timer?: TimerHandle
}

const isUp = (l: Liveness): boolean => l === 'alive' || l === 'suspect'

/**
 * The topology replica: every member this node knows, merged by pure rules.
 * - Adverts of one peer are ordered by (incarnation, sequence); older or equal ones lose.
 * - A dead or left member stays dead for its incarnation (tombstone); only a higher one revives it.
 * - Adverts older than the maximum age or dated in the future are refused (replays, skew).
 * - Suspicion follows Lifeguard (see `suspicion.ts`); only a higher incarnation refutes it.
 * No network here: gossip and sync feed it, the resolver and `meshctl` read it.
 */
export class Replica {
  readonly selfId: string
  readonly #clock: Clock
  readonly #timing: ReplicaTiming
  readonly #entries = new Map<string, MutableEntry>()
  readonly #digest: Digest
  readonly #listeners = new Set<(c: ReplicaChange) => void>()
  /** Dead and left members, in the order they went down (the oldest first, for eviction at the cap). */
  readonly #tombstones = new Set<string>()
  readonly #maxMembers: number

  constructor (init: ReplicaInit) {
    this.selfId = init.selfId
    this.#clock = init.clock
    this.#timing = init.timing
    this.#digest = new Digest(init.digestHash)
    this.#maxMembers = init.maxMembers ?? Number.POSITIVE_INFINITY
  }

  /** Subscribes to changes; returns the unsubscribe function. */
  onChange (listener: (c: ReplicaChange) => void): () => void {
    this.#listeners.add(listener)
    return () => { this.#listeners.delete(listener) }
  }

  /** Number of members held, dead and left included. */
  get size (): number {
    return this.#entries.size
  }

  /** One member, or undefined. */
  get (peerId: string): ReplicaEntry | undefined {
    return this.#entries.get(peerId)
  }

  /** Every member, dead and left included (the resolver filters by liveness). */
  members (): IterableIterator<ReplicaEntry> {
    return this.#entries.values()
  }

  /** How many members are alive or suspect (O(1): kept with the digest). */
  get upCount (): number {
    return this.#digest.count
  }

  /** Members that are alive or suspect. */
  * up (): Generator<ReplicaEntry> {
    for (const e of this.#entries.values()) if (isUp(e.liveness)) yield e
  }

  /** Merges an advert that already passed signature and schema checks. */
  applyAdvert (advert: Advert, envelope: Uint8Array): AdvertMerge {
    const now = this.#clock.now()
    if (advert.issuedAt < now - this.#timing.maxAdvertAgeMs) return 'too-old'
    if (advert.issuedAt > now + this.#timing.maxClockSkewMs) return 'future'
    const e = this.#entries.get(advert.peerId)
    if (e === undefined) {
      if (this.#entries.size >= this.#maxMembers) {
        const oldest = this.#tombstones.values().next().value
        if (oldest === undefined) return 'full'
        this.#forget(oldest)
      }
      this.#entries.set(advert.peerId, { advert, envelope, liveness: 'alive' })
      this.#digest.toggle(advert.peerId, advert.incarnation, advert.seq, 1)
      this.#emit(advert.peerId, undefined, 'alive', advert, true)
      return 'new'
    }
    if (!isUp(e.liveness)) {
      if (advert.incarnation <= (e.downIncarnation ?? e.advert.incarnation)) return 'tombstoned'
      const before = e.liveness
      this.#tombstones.delete(advert.peerId)
      Object.assign(e, { advert, envelope, liveness: 'alive', leaveEnvelope: undefined, downIncarnation: undefined, downAt: undefined })
      this.#digest.toggle(advert.peerId, advert.incarnation, advert.seq, 1)
      this.#emit(advert.peerId, before, 'alive', advert, true)
      return 'revived'
    }
    const cmp = compareVersions(advert, e.advert)
    if (cmp === 0) return 'duplicate'
    if (cmp < 0) return 'stale'
    this.#digest.toggle(e.advert.peerId, e.advert.incarnation, e.advert.seq, -1)
    this.#digest.toggle(advert.peerId, advert.incarnation, advert.seq, 1)
    const before = e.liveness
    e.advert = advert
    e.envelope = envelope
    // A higher incarnation refutes a suspicion; a newer sequence in the same incarnation does not.
    if (e.liveness === 'suspect' && advert.incarnation > (e.suspectIncarnation ?? 0)) this.#clearSuspicion(e)
    this.#emit(advert.peerId, before, e.liveness, advert, true)
    return 'updated'
  }

  /**
   * Merges a suspicion of `subject` at `incarnation`, raised by `from`.
   * Returns `self` when this node is the subject: the caller refutes with a higher incarnation.
   *
   * `expected` is how many confirmations the suspecter says the subject can get: its neighbours
   * but one, as the subject last told it in a probe frame (absent when it never did). Only
   * neighbours confirm, so a member with 3 neighbours can never reach `suspicionConfirmations` (3)
   * confirmations and would wait Lifeguard's timeout for 2 (2 s by default) however dead it is;
   * memberlist likewise expects no more confirmations than its cluster can give. The largest claim
   * of any suspecter counts, between 1 and `suspicionConfirmations`, and with no claim at all,
   * `suspicionConfirmations`: a liar can lower it only when no honest voice knows better, and one
   * voice alone still waits the maximum.
   */
  applySuspect (subject: string, incarnation: number, from: string, expected?: number): SuspectMerge {
    if (subject === this.selfId) return 'self'
    const e = this.#entries.get(subject)
    if (e === undefined || !isUp(e.liveness)) return 'unknown'
    if (incarnation < e.advert.incarnation) return 'stale'
    // A suspicion of an incarnation whose advert we never saw cannot be checked, and its subject
    // ignores it (a liar could pin anyone): drop it; a real one is raised again once the advert arrives.
    if (incarnation > e.advert.incarnation) return 'ahead'
    const k = this.#timing.suspicionConfirmations
    const claim = expected === undefined ? undefined : Math.min(k, Math.max(1, Math.floor(expected)))
    if (e.liveness === 'suspect') {
      if (e.suspecters!.has(from)) return 'duplicate'
      e.suspecters!.add(from)
      if (claim !== undefined) e.claimedConfirmations = Math.max(e.claimedConfirmations ?? 0, claim)
      e.expectedConfirmations = e.claimedConfirmations ?? k
      this.#scheduleDeath(e)
      return 'confirmed'
    }
    e.liveness = 'suspect'
    e.suspecters = new Set([from])
    e.claimedConfirmations = claim
    e.expectedConfirmations = claim ?? k
    e.suspectIncarnation = incarnation
    e.suspectSince = this.#clock.now()
    this.#scheduleDeath(e)
    this.#emit(subject, 'alive', 'suspect', e.advert, false)
    return 'started'
  }

  /** Merges a signed leave: the member is gone for this incarnation. */
  applyLeave (peerId: string, incarnation: number, envelope: Uint8Array): LeaveMerge {
    const e = this.#entries.get(peerId)
    if (e === undefined) return 'unknown'
    if (incarnation < e.advert.incarnation || e.liveness === 'left') return 'stale'
    this.#markDown(e, 'left', incarnation)
    e.leaveEnvelope = envelope
    return 'left'
  }

  /** Declares a member dead now (a connection to it failed for good, or tests). */
  declareDead (peerId: string): boolean {
    const e = this.#entries.get(peerId)
    if (e === undefined || !isUp(e.liveness) || peerId === this.selfId) return false
    this.#markDown(e, 'dead', e.advert.incarnation)
    return true
  }

  /** The anti-entropy digest root: equal roots mean equal sets of live member versions. */
  digestRoot (): string {
    return this.#digest.root()
  }

  /** Per-bucket digests, to find which buckets differ. */
  digestBuckets (): string[] {
    return this.#digest.buckets()
  }

  /** Every member whose peer ID falls in one of `buckets`, sorted by peer ID (stable paging). */
  inBuckets (buckets: ReadonlySet<number>): ReplicaEntry[] {
    const out: ReplicaEntry[] = []
    for (const [id, e] of this.#entries) if (buckets.has(bucketOf(id))) out.push(e)
    return out.sort((a, b) => a.advert.peerId < b.advert.peerId ? -1 : 1)
  }

  /** Forgets dead and left members whose tombstone is older than the retention. */
  gc (): number {
    const cutoff = this.#clock.now() - this.#timing.tombstoneMs
    let n = 0
    for (const id of this.#tombstones) {
      if ((this.#entries.get(id)?.downAt ?? 0) >= cutoff) break // in the order they went down
      this.#forget(id)
      n++
    }
    return n
  }

  #forget (peerId: string): void {
    this.#entries.delete(peerId)
    this.#tombstones.delete(peerId)
  }

  /** Cancels every suspicion timer. */
  stop (): void {
    for (const e of this.#entries.values()) {
      if (e.timer !== undefined) this.#clock.clearTimeout(e.timer)
      e.timer = undefined
    }
  }

  #scheduleDeath (e: MutableEntry): void {
    if (e.timer !== undefined) this.#clock.clearTimeout(e.timer)
    const t = this.#timing
    const timeout = suspicionTimeout(e.suspecters!.size - 1, t.suspicionMinTimeoutMs, t.suspicionMaxTimeoutMs, e.expectedConfirmations!)
    const wait = Math.max(0, e.suspectSince! + timeout - this.#clock.now())
    const timer = this.#clock.setTimeout(() => {
      // Decided after pending I/O: a refutation that arrived in time, behind a busy event loop,
      // is merged first (see Clock.defer).
      this.#clock.defer(() => {
        if (e.timer !== timer) return // refuted or rescheduled meanwhile
        e.timer = undefined
        if (e.liveness === 'suspect') this.#markDown(e, 'dead', e.suspectIncarnation!)
      })
    }, wait)
    e.timer = timer
  }

  #clearSuspicion (e: MutableEntry): void {
    if (e.timer !== undefined) this.#clock.clearTimeout(e.timer)
    e.timer = undefined
    e.suspecters = undefined
    e.expectedConfirmations = undefined
    e.claimedConfirmations = undefined
    e.suspectIncarnation = undefined
    e.suspectSince = undefined
    e.liveness = 'alive'
  }

  #markDown (e: MutableEntry, liveness: 'dead' | 'left', incarnation: number): void {
    const before = e.liveness
    if (before === 'suspect') this.#clearSuspicion(e)
    if (isUp(before)) this.#digest.toggle(e.advert.peerId, e.advert.incarnation, e.advert.seq, -1)
    e.liveness = liveness
    e.downIncarnation = Math.max(incarnation, e.advert.incarnation)
    e.downAt = this.#clock.now()
    this.#tombstones.delete(e.advert.peerId) // re-inserted last: dead then left keeps the order of downAt
    this.#tombstones.add(e.advert.peerId)
    this.#emit(e.advert.peerId, before, liveness, e.advert, false)
  }

  #emit (peerId: string, before: Liveness | undefined, after: Liveness, advert: Advert, advertChanged: boolean): void {
    const change = { peerId, before, after, advert, advertChanged }
    for (const l of this.#listeners) l(change)
  }
}
