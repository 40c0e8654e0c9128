import type { GossipOptions } from '../config.ts'

type Timing = Pick<GossipOptions['timing'], 'probeIntervalMs' | 'probePeriodMs' | 'maxProbesPerTick' | 'probeTimeoutMs' | 'maxProbeTimeoutMs' | 'indirectProbeTimeoutMs' | 'maxHealthMultiplier'>

/** A smoothed round trip and its deviation (RFC 6298). */
interface Rtt { srtt: number, rttvar: number }

/** What a node knows of one peer: its round trips, and how many neighbours it said it has in its last ping or ack. */
interface PeerRecord { rtt?: Rtt, degree?: number }

function smooth (r: Rtt, sample: number): void {
  r.rttvar = 0.75 * r.rttvar + 0.25 * Math.abs(r.srtt - sample)
  r.srtt = 0.875 * r.srtt + 0.125 * sample
}

/** Linux's minimum TCP retransmission timeout: how late an ack is when one segment was lost. */
const TCP_MIN_RTO_MS = 200

/** A timeout decided less late than this is never blamed on this node's own backlog. */
const MIN_LATE_MS = 25

/** Peers whose round trips are remembered; past this the table starts over. */
const MAX_PEERS = 10_000

/**
 * How long a node waits for its peers, and how hard it probes. It keeps two things: Lifeguard's
 * local health, and a smoothed round trip per peer. Pure state, no network and no clock, so the
 * gossip node and a model simulation share it.
 *
 * - **Health** is 0 when the node is healthy. Each step stretches every timeout by one more
 *   multiple and makes the node probe less, so an overloaded host does not accuse healthy peers.
 * - **Round trips** follow TCP's retransmission timer: the smoothed RTT plus four deviations
 *   (RFC 6298 gains).
 */
export class Awareness {
  readonly #t: Timing
  #health = 0
  readonly #peers = new Map<string, PeerRecord>()
  /** Every sample of every peer, smoothed alike: what a peer with no sample yet is judged by. */
  #any?: Rtt

  constructor (timing: Timing) {
    this.#t = timing
  }

  /** 0 when healthy, up to `maxHealthMultiplier`. */
  get health (): number {
    return this.#health
  }

  /** +1 when we look slow (no helper answered, we had to refute), -1 per good probe. */
  adjust (delta: number): void {
    this.#health = Math.min(this.#t.maxHealthMultiplier, Math.max(0, this.#health + delta))
  }

  /**
   * How long to wait for `peerId`'s ack, times our health, between `probeTimeoutMs` and
   * `maxProbeTimeoutMs`: its smoothed round trip plus four deviations, plus one TCP
   * retransmission (a ping or an ack whose segment was lost arrives that late, which is no fault
   * of the peer). Before the first sample of a peer, the same formula over every round trip this
   * node has measured: a node on a WAN has seen 100 ms round trips before it meets a new peer,
   * and judging that peer by the LAN floor failed 37 % of first probes on the model's WAN
   * profile. With no sample at all, the cap.
   */
  probeTimeout (peerId: string): number {
    const r = this.#peers.get(peerId)?.rtt ?? this.#any
    // With no sample at all (a node's first probes) nothing says how far its peers are: the cap.
    if (r === undefined) return this.#t.maxProbeTimeoutMs * (1 + this.#health)
    // TCP resends a lost segment after srtt + max(4 rttvar, 200 ms) (Linux), so an ack whose
    // ping or ack was lost once arrives that much after the usual srtt + 4 rttvar.
    const adaptive = r.srtt + 4 * r.rttvar + r.srtt + Math.max(4 * r.rttvar, TCP_MIN_RTO_MS)
    return Math.min(this.#t.maxProbeTimeoutMs, Math.max(this.#t.probeTimeoutMs, adaptive)) * (1 + this.#health)
  }

  /**
   * How long, after its timeout, a ping's ack still counts while helpers are asked: another timeout's
   * worth when the timeout is set by the round trip (above `probeTimeoutMs`), none on a LAN. On a
   * lossy WAN an ack that TCP delayed twice (the ping and the ack each behind a lost segment, which
   * holds up everything after it on the connection) comes after one retransmission's allowance, and
   * helpers in a large mesh seldom hold a connection to the target to vouch for it.
   */
  lateAckWindow (peerId: string): number {
    const timeout = this.probeTimeout(peerId)
    return timeout > this.#t.probeTimeoutMs * (1 + this.#health) ? timeout : 0
  }

  /** How long to wait for a helper's answer about `target`: both legs, at least the indirect timeout. */
  indirectTimeout (target: string, helper: string): number {
    return Math.max(this.#t.indirectProbeTimeoutMs * (1 + this.#health), this.probeTimeout(target) + this.probeTimeout(helper))
  }

  /**
   * True when a timeout was decided so late (`lagMs` past its due time, spent on this node's own
   * backlog) that the node's slowness, not the peer's, may explain the missing answer. Such a probe
   * proves nothing: it raises our own health instead of accusing the peer (Lifeguard).
   */
  isLate (lagMs: number, timeoutMs: number): boolean {
    return lagMs > Math.max(MIN_LATE_MS, timeoutMs / 4)
  }

  /** Records one ack round trip, in ms. */
  recordRtt (peerId: string, sample: number): void {
    const p = this.#record(peerId)
    if (p.rtt === undefined) p.rtt = { srtt: sample, rttvar: sample / 2 }
    else smooth(p.rtt, sample)
    if (this.#any === undefined) this.#any = { srtt: sample, rttvar: sample / 2 }
    else smooth(this.#any, sample)
  }

  /** Records how many neighbours `peerId` said it has (in a ping or an ack). */
  recordDegree (peerId: string, degree: number): void {
    this.#record(peerId).degree = degree
  }

  #record (peerId: string): PeerRecord {
    let p = this.#peers.get(peerId)
    if (p === undefined) {
      if (this.#peers.size >= MAX_PEERS) this.#peers.clear()
      p = {}
      this.#peers.set(peerId, p)
    }
    return p
  }

  /**
   * How many confirmations a suspicion of `peerId` should wait for, at most `wanted`: only its
   * neighbours probe it, and one of them is the suspecter, so its other neighbours are all it can
   * get. Never fewer than 2: a member with 1 or 2 neighbours is almost always one still starting,
   * and on a loaded host a starting process can be silent for a second or two (the 20-process
   * benchmark declared a starting agent dead in 1 run of 4 when 1 was allowed and members that
   * never said made no claim). Unknown (it never said): `wanted`, the safe side.
   */
  expectedConfirmations (peerId: string, wanted: number): number {
    const d = this.#peers.get(peerId)?.degree
    return d === undefined ? wanted : Math.min(wanted, Math.max(2, d - 1))
  }

  /** Forgets a peer that died or left. */
  forget (peerId: string): void {
    this.#peers.delete(peerId)
  }

  /**
   * Probes to send this tick: enough that each of `neighbours` is probed once per probe period
   * (SWIM), fewer while unhealthy, at least one and at most `maxProbesPerTick`.
   */
  probesPerTick (neighbours: number): number {
    const t = this.#t
    const wanted = Math.ceil(neighbours * t.probeIntervalMs / t.probePeriodMs / (1 + this.#health))
    return Math.min(t.maxProbesPerTick, Math.max(1, wanted))
  }
}
