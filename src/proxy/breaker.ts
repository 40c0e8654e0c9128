import type { Clock } from '../clock.ts'

/** When a caller stops sending calls to a provider that keeps failing them, and for how long. */
export interface BreakerPolicy {
  /** Consecutive failures (connection, 5xx, lost, timed out) that open a provider's circuit: 5, as Envoy's outlier detection. */
  consecutiveFailures: number
  /** The first cool-off of an open circuit, in ms: 30 s, as Envoy's base ejection time; it grows with each ejection. */
  baseEjectionMs: number
  /** The longest cool-off, in ms: 300 s, as Envoy's. */
  maxEjectionMs: number
  /**
   * The largest share of one dependency's providers left out for open circuits, in percent: 10,
   * as Envoy's, and at least one provider whatever the share.
   */
  maxEjectionPercent: number
  /** Calls one caller keeps in flight to one provider at most: 1,024, as Envoy's max requests. */
  maxRequestsPerProvider: number
}

/** The defaults, Envoy's. */
export const DEFAULT_BREAKER: BreakerPolicy = { consecutiveFailures: 5, baseEjectionMs: 30_000, maxEjectionMs: 300_000, maxEjectionPercent: 10, maxRequestsPerProvider: 1_024 }

interface ProviderState {
  failures: number
  /** Times the circuit opened; the cool-off is the base times this, capped. */
  ejections: number
  /** When it last opened: a provider healthy for `maxEjectionMs` since starts over. */
  ejectedAt?: number
  /** While the circuit is open: when it half-opens. */
  openUntil?: number
  /** Half-open: a trial call is out; others wait for its outcome. */
  trial: boolean
  inflight: number
  /** Moving average of its answered calls' latency, in ms (0 until one is measured). */
  latencyMs: number
}

const NONE: ReadonlySet<string> = new Set()

/** Weight of the newest sample in the latency average. */
const LATENCY_ALPHA = 0.3

/** A provider's circuit as one caller sees it. */
export type Circuit = 'closed' | 'open' | 'half-open'

/**
 * One caller's circuit breakers, one per provider: after `consecutiveFailures` failures in a row
 * the circuit opens and the provider is left out of that caller's choices for a cool-off that
 * grows with each ejection; then one trial call goes through (half-open), and its success closes
 * the circuit while its failure opens it again. Also counts the calls in flight per provider
 * (the concurrency cap).
 */
export class Breakers {
  readonly policy: BreakerPolicy
  readonly #clock: Clock
  readonly #states = new Map<string, ProviderState>()
  /** Providers whose circuit is open or half-open: while none is, `ejected` has nothing to look at. */
  #open = 0

  constructor (clock: Clock, policy: BreakerPolicy = DEFAULT_BREAKER) {
    this.#clock = clock
    this.policy = policy
  }

  /** How many providers' circuits are open or half-open (0: `ejected` has nothing to say). */
  get opened (): number {
    return this.#open
  }

  /** The circuit of `peerId` now. */
  circuit (peerId: string): Circuit {
    const s = this.#states.get(peerId)
    if (s?.openUntil === undefined) return 'closed'
    return this.#clock.now() < s.openUntil ? 'open' : 'half-open'
  }

  /**
   * Whether a call may go to `peerId` now: not with its circuit open, not while a half-open
   * trial is out (this call becomes the trial otherwise), not past the concurrency cap.
   * `'open'` or `'busy'` say why not.
   */
  admit (peerId: string): true | 'open' | 'busy' {
    const s = this.#states.get(peerId)
    if (s === undefined) return true
    if (s.inflight >= this.policy.maxRequestsPerProvider) return 'busy'
    const c = this.circuit(peerId)
    if (c === 'open' || (c === 'half-open' && s.trial)) return 'open'
    if (c === 'half-open') s.trial = true
    return true
  }

  /** Providers of one dependency whose circuits are open, at most its ejection share (the rest are still tried). */
  ejected (peerIds: readonly string[]): ReadonlySet<string> {
    if (this.#open === 0) return NONE // the common case, asked on every call: nothing to allocate
    const out = new Set<string>()
    const share = Math.max(1, Math.floor(peerIds.length * this.policy.maxEjectionPercent / 100))
    for (const id of peerIds) {
      if (out.size >= share) break
      const c = this.circuit(id)
      if (c === 'open' || (c === 'half-open' && this.#states.get(id)!.trial)) out.add(id)
    }
    return out
  }

  /** A call is going out to `peerId` (its state is kept until the member leaves: `forget`). */
  start (peerId: string): void {
    this.#state(peerId).inflight++
  }

  /** Calls this caller has in flight to `peerId`. */
  inflight (peerId: string): number {
    return this.#states.get(peerId)?.inflight ?? 0
  }

  /** The moving average of `peerId`'s answer time, in ms (0 when none was measured). */
  latency (peerId: string): number {
    return this.#states.get(peerId)?.latencyMs ?? 0
  }

  /**
   * Its call ended: `ok` (an answer, even a tool's own error), a failure that counts, or neither
   * (aborted by the caller); `ms`, how long an answered call took.
   */
  end (peerId: string, outcome: 'ok' | 'failed' | 'neither', ms?: number): void {
    const s = this.#state(peerId)
    if (outcome === 'ok' && ms !== undefined) s.latencyMs = s.latencyMs === 0 ? ms : s.latencyMs + LATENCY_ALPHA * (ms - s.latencyMs)
    s.inflight = Math.max(0, s.inflight - 1)
    const wasTrial = s.trial
    s.trial = false
    const now = this.#clock.now()
    if (outcome === 'ok') {
      s.failures = 0
      if (s.openUntil !== undefined && now >= s.openUntil) { // the trial passed
        s.openUntil = undefined
        this.#open--
      }
      if (s.openUntil === undefined && s.ejectedAt !== undefined && now - s.ejectedAt > this.policy.maxEjectionMs) {
        s.ejections = 0
        s.ejectedAt = undefined
      }
    } else if (outcome === 'failed') {
      s.failures++
      if (wasTrial || (s.openUntil === undefined && s.failures >= this.policy.consecutiveFailures)) {
        s.ejections++
        s.ejectedAt = now
        if (s.openUntil === undefined) this.#open++
        s.openUntil = now + Math.min(this.policy.maxEjectionMs, this.policy.baseEjectionMs * s.ejections)
      }
    }
  }

  /** When the circuit of `peerId` half-opens (ms on the clock), while it is open. */
  opensAt (peerId: string): number | undefined {
    return this.#states.get(peerId)?.openUntil
  }

  /** How many providers' circuits are open and half-open now (metrics read it at scrape time). */
  circuits (): { open: number, halfOpen: number } {
    let open = 0
    let halfOpen = 0
    for (const id of this.#states.keys()) {
      const c = this.circuit(id)
      if (c === 'open') open++
      else if (c === 'half-open') halfOpen++
    }
    return { open, halfOpen }
  }

  /** Forgets a provider that left the mesh. */
  forget (peerId: string): void {
    if (this.#states.get(peerId)?.openUntil !== undefined) this.#open--
    this.#states.delete(peerId)
  }

  #state (peerId: string): ProviderState {
    let s = this.#states.get(peerId)
    if (s === undefined) this.#states.set(peerId, s = { failures: 0, ejections: 0, trial: false, inflight: 0, latencyMs: 0 })
    return s
  }
}
