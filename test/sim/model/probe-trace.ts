// Why probes fail, in a model simulation: follows every frame on the mesh's probe streams (pings,
// ping-reqs, acks, nacks) and every dial, and every suspicion a node raises itself, without
// touching the node's code. A direct probe failed when its prober asks helpers about the same
// target (the reqs go out the instant its timeout fires), so the trace knows each failure's
// timeout, whether the prober had a round-trip sample of the target yet, whether the ack came
// later and how late, and whether loss (a TCP retransmission) or a slow node was involved; and
// for the indirect round that follows, what each helper answered and whether it had to dial.
import type { GossipNode } from '../../../src/gossip/gossip-node.ts'
import type { ModelNet, ModelTap } from './network.ts'

interface Ping {
  prober: ModelNet
  target: ModelNet
  sentAt: number
  /** The prober had an in-time ack from the target before (so its timeout was adaptive, not the floor alone). */
  hadSample: boolean
  /** What retransmissions added to the ping's delivery, and to its ack's once that arrived, ms. */
  lossMs: number
  /** When the prober gave up on it (it asked helpers, or, as a helper, answered nack). */
  failedAt?: number
  /** For a helper's ping: the request it serves. */
  help?: Help
  /** An ack came in time. */
  acked?: boolean
  /** An own probe of a healthy member (counted in the report). */
  counted: boolean
  /** The indirect round that followed its failure. */
  round?: Round
}

interface Help {
  requester: ModelNet
  helper: ModelNet
  target: ModelNet
  /** The helper was not connected to the target and dialled it. */
  dialled: boolean
  /** Part of a counted round. */
  counted: boolean
  ping?: Ping
  answer?: 'ack' | 'nack'
}

interface Round {
  ping: Ping
  helps: Help[]
}

/** What each own suspicion (a node's failed probe round, not gossip it heard) came from. */
export type VoiceCause =
  | 'subject slow' | 'prober slow' | 'first probe (no RTT sample)' | 'ping or ack retransmitted' | 'no ping sent (no connection)' | 'other'

/** Counts gathered by a `ProbeTrace`. */
export interface ProbeReport {
  /**
   * Direct probes sent by probers on their own behalf (in all; before the prober had a round-trip
   * sample of the target; between two nodes that are not slow; both), and by helpers for others.
   */
  pings: { own: number, ownNoSample: number, ownNormal: number, ownNormalNoSample: number, forHelp: number }
  /** Own direct probes that timed out, by what was true of them (one failure may count in several). */
  failed: {
    total: number
    noSample: number
    subjectSlow: number
    proberSlow: number
    retransmitted: number
    /** The ack came after the timeout: its round trip, ms. */
    late: number[]
    /** The timeout the prober used, ms. */
    timeouts: number[]
    /** Failures between two nodes that are not slow: how many, before a sample, retransmitted, and the late acks' round trips. */
    normal: { total: number, noSample: number, retransmitted: number, late: number[] }
  }
  /** Indirect rounds (after a failed own probe) and the helpers' answers as the helpers sent them. */
  indirect: { rounds: number, helpers: number, ack: number, nack: number, none: number, dialled: number, dialledNack: number, helperNoSampleNack: number, allFailed: number }
  /** Own suspicion voices (raised or confirmed) of running nodes: in all, and about members the simulation says are healthy, by cause. */
  voices: { total: number, healthy: number, causes: Record<VoiceCause, number> }
}

/** Follows probes in a model network; see the top of this file. */
export class ProbeTrace implements ModelTap {
  readonly #pings = new Map<string, Ping>()
  readonly #reqs = new Map<string, Help>()
  /** Requests a helper is serving for a target, oldest first. */
  readonly #helping = new Map<string, Help[]>()
  readonly #samples = new Set<string>()
  /** The last failed own round of each prober for each target. */
  readonly #rounds = new Map<string, Round>()
  readonly #byPeer = new Map<string, ModelNet>()
  readonly #healthy: (peerId: string) => boolean
  readonly report: ProbeReport = {
    pings: { own: 0, ownNoSample: 0, ownNormal: 0, ownNormalNoSample: 0, forHelp: 0 },
    failed: { total: 0, noSample: 0, subjectSlow: 0, proberSlow: 0, retransmitted: 0, late: [], timeouts: [], normal: { total: 0, noSample: 0, retransmitted: 0, late: [] } },
    indirect: { rounds: 0, helpers: 0, ack: 0, nack: 0, none: 0, dialled: 0, dialledNack: 0, helperNoSampleNack: 0, allFailed: 0 },
    voices: { total: 0, healthy: 0, causes: { 'subject slow': 0, 'prober slow': 0, 'first probe (no RTT sample)': 0, 'ping or ack retransmitted': 0, 'no ping sent (no connection)': 0, other: 0 } },
  }

  /** `healthy` says whether a member is running, not hung and not cut off (the simulation knows). */
  constructor (healthy: (peerId: string) => boolean) {
    this.#healthy = healthy
  }

  /** Follows a node's own suspicion voices (wraps its replica's `applySuspect`, which it calls with its own ID). */
  watch (node: GossipNode, net: ModelNet): void {
    this.#byPeer.set(node.peerId, net)
    const replica = node.replica
    const apply = replica.applySuspect.bind(replica)
    replica.applySuspect = (subject, incarnation, from) => {
      const merged = apply(subject, incarnation, from)
      if (from === node.peerId && (merged === 'started' || merged === 'confirmed')) this.#voice(net, subject)
      return merged
    }
  }

  /** Pings and requests as they are sent; acks and nacks as they reach the prober. */
  frame (phase: 'sent' | 'received', from: ModelNet, to: ModelNet, streamId: number, data: Uint8Array, at: number, lossMs: number): void {
    let f: { t: string, n: number, target?: string }
    try { f = JSON.parse(new TextDecoder().decode(data)) } catch { return }
    const key = `${streamId}:${f.n}`
    if (phase === 'sent' && f.t === 'ping') this.#ping(from, to, key, at, lossMs)
    else if (phase === 'sent' && f.t === 'req') this.#req(from, to, key, f.target ?? '', at)
    else if (phase === 'received' && (f.t === 'ack' || f.t === 'nack')) this.#answer(from, key, f.t, at, lossMs)
  }

  dial (from: ModelNet, to: ModelNet): void {
    for (const h of this.#helping.get(`${from.peerId}\0${to.peerId}`) ?? []) h.dialled = true
  }

  #ping (prober: ModelNet, target: ModelNet, key: string, at: number, lossMs: number): void {
    const tasks = this.#helping.get(`${prober.peerId}\0${target.peerId}`)
    const help = tasks?.find((h) => h.ping === undefined)
    // Probes of crashed and hung members fail, as they should, and a hung node's probes go nowhere:
    // only probes between healthy members count.
    const counted = help === undefined && this.#healthy(target.peerId) && this.#healthy(prober.peerId)
    const ping: Ping = { prober, target, sentAt: at, hadSample: this.#samples.has(`${prober.peerId}\0${target.peerId}`), lossMs, counted, ...(help === undefined ? {} : { help }) }
    if (help !== undefined) help.ping = ping
    this.#pings.set(key, ping)
    this.#pings.set(`last\0${prober.peerId}\0${target.peerId}`, ping)
    const p = this.report.pings
    if (help !== undefined) p.forHelp++
    if (!counted) return
    const normal = !prober.slow && !target.slow
    p.own++
    if (!ping.hadSample) p.ownNoSample++
    if (normal) p.ownNormal++
    if (normal && !ping.hadSample) p.ownNormalNoSample++
  }

  #req (requester: ModelNet, helper: ModelNet, key: string, targetId: string, at: number): void {
    const target = this.#byPeer.get(targetId)
    if (target === undefined) return
    const pair = `${requester.peerId}\0${targetId}`
    // The prober's last own ping of the target timed out just now (one req per helper follows).
    const ping = this.#pings.get(`last\0${pair}`)
    if (ping !== undefined && ping.help === undefined && ping.failedAt === undefined) {
      ping.failedAt = at
      // A member that crashed or hung while the ping was out fails it rightly.
      if (!this.#healthy(targetId) || !this.#healthy(requester.peerId)) ping.counted = false
      if (ping.counted) {
        const f = this.report.failed
        f.total++
        f.timeouts.push(at - ping.sentAt)
        if (!ping.hadSample) f.noSample++
        if (target.slow) f.subjectSlow++
        if (requester.slow) f.proberSlow++
        if (ping.lossMs > 0) f.retransmitted++
        if (!target.slow && !requester.slow) {
          f.normal.total++
          if (!ping.hadSample) f.normal.noSample++
          if (ping.lossMs > 0) f.normal.retransmitted++
        }
        ping.round = { ping, helps: [] }
        this.#rounds.set(pair, ping.round)
        this.report.indirect.rounds++
      }
    }
    const help: Help = { requester, helper, target, dialled: false, counted: ping?.round !== undefined }
    ping?.round?.helps.push(help)
    if (help.counted) this.report.indirect.helpers++
    this.#reqs.set(key, help)
    const hk = `${helper.peerId}\0${targetId}`
    const list = this.#helping.get(hk) ?? []
    list.push(help)
    this.#helping.set(hk, list)
  }

  #answer (from: ModelNet, key: string, kind: 'ack' | 'nack', at: number, lossMs: number): void {
    const ping = this.#pings.get(key)
    if (ping !== undefined && ping.target === from) {
      this.#pings.delete(key)
      if (kind !== 'ack') return
      ping.lossMs += lossMs
      if (ping.failedAt === undefined && ping.help?.answer === undefined) {
        ping.acked = true
        this.#samples.add(`${ping.prober.peerId}\0${ping.target.peerId}`)
      } else if (ping.counted) {
        const f = this.report.failed
        const normal = !ping.prober.slow && !ping.target.slow
        f.late.push(at - ping.sentAt)
        if (normal) f.normal.late.push(at - ping.sentAt)
        if (ping.lossMs === lossMs && lossMs > 0) {
          f.retransmitted++
          if (normal) f.normal.retransmitted++
        }
      }
      return
    }
    const help = this.#reqs.get(key)
    if (help === undefined || help.helper !== from) return
    this.#reqs.delete(key)
    help.answer = kind
    const hk = `${from.peerId}\0${help.target.peerId}`
    const rest = (this.#helping.get(hk) ?? []).filter((h) => h !== help)
    if (rest.length === 0) this.#helping.delete(hk)
    else this.#helping.set(hk, rest)
    if (kind === 'nack' && help.ping !== undefined) help.ping.failedAt = at
    if (!help.counted) return
    const ind = this.report.indirect
    if (kind === 'ack') ind.ack++
    else {
      ind.nack++
      if (help.dialled) ind.dialledNack++
      else if (help.ping?.hadSample === false) ind.helperNoSampleNack++
    }
    if (help.dialled) ind.dialled++
  }

  #voice (prober: ModelNet, subjectId: string): void {
    // A hung node's timers still run: it suspects everyone, but nobody hears it.
    if (!this.#healthy(prober.peerId)) return
    const v = this.report.voices
    v.total++
    if (!this.#healthy(subjectId)) return
    v.healthy++
    const subject = this.#byPeer.get(subjectId)
    const round = this.#rounds.get(`${prober.peerId}\0${subjectId}`)
    // Without helpers to ask, a failed probe leaves no round: its last ping tells.
    const last = this.#pings.get(`last\0${prober.peerId}\0${subjectId}`)
    const ping = round?.ping ?? (last?.acked === true ? undefined : last)
    const cause: VoiceCause = subject?.slow === true
      ? 'subject slow'
      : prober.slow
        ? 'prober slow'
        : ping === undefined
          ? 'no ping sent (no connection)'
          : !ping.hadSample
            ? 'first probe (no RTT sample)'
            : ping.lossMs > 0
              ? 'ping or ack retransmitted'
              : 'other'
    v.causes[cause]++
    if (round !== undefined) {
      const ind = this.report.indirect
      // Helpers that never answered are counted here, once the round ended in a suspicion.
      ind.none += round.helps.filter((h) => h.answer === undefined).length
      if (!round.helps.some((h) => h.answer === 'ack')) ind.allFailed++
      this.#rounds.delete(`${prober.peerId}\0${subjectId}`)
    }
  }
}

/** A `ProbeReport` in a few numbers (for benchmarks' JSON and tables). */
export interface ProbeSummary {
  ownProbes: number
  /** Own direct probes that timed out: in all, and the share of those sent before a sample and after one. */
  failed: number
  failedRate: { noSample: number, withSample: number }
  /** The same between two nodes that are not slow. */
  normalFailedRate: { noSample: number, withSample: number }
  /** Failures to or from slow nodes, and failures a retransmission delayed (own, or ahead on the connection). */
  failedSlow: number
  failedRetransmitted: number
  /** Round trips of acks that came after their timeout, ms: median, 90th percentile, max. */
  lateAckMs: [number, number, number]
  indirect: ProbeReport['indirect']
  voices: ProbeReport['voices']
}

const quantile = (xs: number[], q: number): number => xs.length === 0 ? 0 : Math.round([...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor(q * xs.length))])
const ratio = (a: number, b: number): number => b === 0 ? 0 : Math.round(1e4 * a / b) / 1e4

/** Condenses a trace's report. */
export function summarize (r: ProbeReport): ProbeSummary {
  const p = r.pings
  const f = r.failed
  return {
    ownProbes: p.own,
    failed: f.total,
    failedRate: { noSample: ratio(f.noSample, p.ownNoSample), withSample: ratio(f.total - f.noSample, p.own - p.ownNoSample) },
    normalFailedRate: { noSample: ratio(f.normal.noSample, p.ownNormalNoSample), withSample: ratio(f.normal.total - f.normal.noSample, p.ownNormal - p.ownNormalNoSample) },
    failedSlow: f.total - f.normal.total,
    failedRetransmitted: f.retransmitted,
    lateAckMs: [quantile(f.late, 0.5), quantile(f.late, 0.9), quantile(f.late, 1)],
    indirect: r.indirect,
    voices: r.voices,
  }
}
