import { logger } from '../telemetry/log.ts'
import type { Connection, Stream } from '@libp2p/interface'
import { isMeshError, MeshError } from '../errors.ts'
import { AdmissionFrame } from './admission.ts'
import type { Admitted, Admitter } from './admission.ts'
import { jsonFrames } from './frames.ts'
import type { FrameStream } from './net.ts'

const log = logger('mesh:admission')

/** A new connection's peer must prove itself within this, or the connection is closed. */
export const ADMIT_TIMEOUT_MS = 5_000
/** A refused peer ID may not connect again for this long (each refusal costs a handshake and checks). */
export const REFUSED_MS = 60_000
/** A proof is up to 4 certificates of at most 8 KB each, in base64, and a signature. */
export const MAX_ADMISSION_FRAME = 40_000
const MAX_REFUSED = 10_000

/** The protocol of the admission exchange of a mesh. */
export function admissionProtocol (mesh: string): string {
  return `/mcp-mesh/${mesh}/admit/1`
}

/** What the gate is built from. */
export interface GateInit {
  admitter: Admitter
  /** This node's peer ID. */
  self: string
  /** Opens the admission protocol on a connection, as length-prefixed frames. */
  frames: (stream: Stream) => FrameStream
  protocol: string
  /** A peer was refused: count and log it. */
  onRefused: (peerId: string, reason: string) => void
  /** A peer was admitted (gossipsub's cached score of it is stale now). */
  onAdmitted: (peerId: string) => void
  /** Closes every connection to a peer. */
  hangUp: (peerId: string) => Promise<void>
  now?: () => number
}

/**
 * Who may use the mesh's protocols: peers that proved an SVID bound to their peer ID on an
 * admission exchange right after Noise. The dialer opens it; the listener waits for it up to
 * `ADMIT_TIMEOUT_MS`, then closes. Until admitted, a peer's gossip, sync and probe streams wait,
 * and gossipsub sends it nothing; once refused, its connections are closed, and a peer whose proof
 * failed the checks is kept out by the gater for `REFUSED_MS`. A renewal of this node's identity is proven
 * again on every connection; a peer whose certificate expired without a new proof is hung up.
 */
export class AdmissionGate {
  readonly #i: GateInit
  readonly #now: () => number
  readonly #admitted = new Map<string, Admitted>()
  readonly #waiting = new Map<string, Array<(ok: boolean) => void>>()
  readonly #refused = new Map<string, number>()
  readonly #timers = new Set<ReturnType<typeof setTimeout>>()
  #stopped = false

  constructor (init: GateInit) {
    this.#i = init
    this.#now = init.now ?? Date.now
  }

  /** Admitted, with a certificate still valid. */
  isAdmitted (peerId: string): boolean {
    const a = this.#admitted.get(peerId)
    return a !== undefined && a.notAfter > this.#now()
  }

  /** Refused recently: the gater denies its connections. */
  isRefused (peerId: string): boolean {
    const until = this.#refused.get(peerId)
    if (until === undefined) return false
    if (until > this.#now()) return true
    this.#refused.delete(peerId)
    return false
  }

  /** Resolves true once the peer is admitted, false when it is refused or does not prove itself in time. */
  async wait (peerId: string): Promise<boolean> {
    if (this.isAdmitted(peerId)) return true
    if (this.isRefused(peerId) || this.#stopped) return false
    return new Promise((resolve) => {
      const list = this.#waiting.get(peerId) ?? []
      list.push(resolve)
      this.#waiting.set(peerId, list)
      this.#after(ADMIT_TIMEOUT_MS, () => { this.#settle(peerId, this.isAdmitted(peerId)) })
    })
  }

  /** A connection opened: the dialer proves itself; the listener waits for the proof. */
  onConnection (conn: Connection): void {
    const peer = conn.remotePeer.toString()
    if (this.#stopped) return
    if (conn.direction === 'outbound') {
      void this.exchange(conn)
      return
    }
    this.#after(ADMIT_TIMEOUT_MS, () => {
      if (conn.status === 'open' && !this.isAdmitted(peer)) this.#refuse(peer, `it proved no identity within ${ADMIT_TIMEOUT_MS} ms of connecting`, 'count')
    })
  }

  /**
   * Sends this node's proof on a connection and checks the peer's answer (a new connection, or a
   * renewal). A renewal's exchange that breaks closes nothing: the peer's admission stands until
   * its certificate expires (`sweep`), and the next renewal tries again.
   */
  async exchange (conn: Connection, renewal = false): Promise<void> {
    const peer = conn.remotePeer.toString()
    const signal = AbortSignal.timeout(ADMIT_TIMEOUT_MS)
    try {
      const stream = await conn.newStream(this.#i.protocol, { signal })
      const io = jsonFrames<AdmissionFrame>(this.#i.frames(stream), { in: 0, out: 0 }, 'admission', { signal })
      await io.send({ t: 'proof', proof: this.#i.admitter.prove(this.#i.self, peer) })
      const answer = await io.recv(AdmissionFrame)
      await stream.close().catch(() => {})
      if (answer.t === 'refused') {
        log('%s refused our proof: %s', peer, answer.reason)
        this.#settle(peer, this.isAdmitted(peer))
        return
      }
      this.#judge(peer, this.#i.admitter.check(answer.proof, peer, this.#i.self))
    } catch (err) {
      if (this.#stopped || conn.status !== 'open') return
      if (renewal && !isMeshError(err, 'MESH_ERR_WIRE_MALFORMED')) {
        log('proving our renewed identity to %s failed: %s', peer, (err as Error).message)
        return
      }
      // A peer that does not speak admission (one run with TLS off) cannot be admitted: barred, as a bad proof is.
      if ((err as Error).name === 'UnsupportedProtocolError') this.#refuse(peer, 'it does not take part in admission (is it running with TLS off?)', 'bar')
      else this.#refuse(peer, `its admission exchange failed: ${(err as Error).message}`, isMeshError(err, 'MESH_ERR_WIRE_MALFORMED') ? 'bar' : 'quiet')
    }
  }

  /** Answers a peer's admission exchange: checks its proof, and proves this node in return. */
  async serve (stream: Stream, conn: Connection): Promise<void> {
    const peer = conn.remotePeer.toString()
    const signal = AbortSignal.timeout(ADMIT_TIMEOUT_MS)
    const io = jsonFrames<AdmissionFrame>(this.#i.frames(stream), { in: 0, out: 0 }, 'admission', { signal })
    try {
      const frame = await io.recv(AdmissionFrame)
      if (frame.t !== 'proof') throw new MeshError('MESH_ERR_WIRE_MALFORMED', 'the first admission frame must be a proof')
      const verdict = this.#i.admitter.check(frame.proof, peer, this.#i.self)
      if (typeof verdict === 'string') {
        await io.send({ t: 'refused', reason: verdict }).catch(() => {})
      } else {
        await io.send({ t: 'proof', proof: this.#i.admitter.prove(this.#i.self, peer) })
      }
      await stream.close().catch(() => {})
      this.#judge(peer, verdict)
    } catch (err) {
      stream.abort(err as Error)
      if (!this.#stopped) this.#refuse(peer, `its admission exchange failed: ${(err as Error).message}`, isMeshError(err, 'MESH_ERR_WIRE_MALFORMED') ? 'bar' : 'quiet')
    }
  }

  /** The last connection to a peer closed: it proves itself again on the next one. */
  forget (peerId: string): void {
    this.#admitted.delete(peerId)
  }

  /**
   * Hangs up every admitted peer whose certificate expired without a new proof, and bars every
   * one whose trust domain is no longer trusted (a revoked entity).
   */
  sweep (): void {
    const now = this.#now()
    for (const [peer, a] of this.#admitted) {
      if (!this.#i.admitter.trusts(a)) this.#refuse(peer, `${a.spiffeId}'s trust domain ${a.trustDomain} is no longer trusted`, 'bar')
      else if (a.notAfter <= now) this.#refuse(peer, `${a.spiffeId}'s certificate expired and no renewed one was proven`, 'count')
    }
  }

  /** Lets every barred peer try again (what this node trusts changed: it may be trusted now). */
  liftBars (): void {
    this.#refused.clear()
  }

  stop (): void {
    this.#stopped = true
    for (const t of this.#timers) clearTimeout(t)
    this.#timers.clear()
    for (const peer of [...this.#waiting.keys()]) this.#settle(peer, false)
  }

  #judge (peer: string, verdict: Admitted | string): void {
    if (typeof verdict === 'string') {
      this.#refuse(peer, verdict, 'bar')
      return
    }
    const first = !this.#admitted.has(peer)
    this.#admitted.set(peer, verdict)
    if (first) log('admitted %s as %s', peer, verdict.spiffeId)
    this.#i.onAdmitted(peer)
    this.#settle(peer, true)
  }

  /**
   * Closes a peer out. Only a proof that failed its checks bars the peer ID for `REFUSED_MS`: a
   * member too starved to finish the exchange in time may try again at once (`count`: counted as
   * a refusal), and so may one whose exchange broke, a member stopping for instance (`quiet`).
   */
  #refuse (peer: string, reason: string, how: 'bar' | 'count' | 'quiet'): void {
    this.#admitted.delete(peer)
    if (how === 'bar') {
      if (this.#refused.size >= MAX_REFUSED) this.#refused.clear() // bounded: forgetting only lets it try again
      this.#refused.set(peer, this.#now() + REFUSED_MS)
    }
    log('refused %s: %s', peer, reason)
    if (how !== 'quiet') this.#i.onRefused(peer, reason)
    this.#settle(peer, false)
    void this.#i.hangUp(peer).catch(() => {})
  }

  #settle (peer: string, ok: boolean): void {
    const list = this.#waiting.get(peer)
    if (list === undefined) return
    this.#waiting.delete(peer)
    for (const resolve of list) resolve(ok)
  }

  #after (ms: number, fn: () => void): void {
    const t = setTimeout(() => { this.#timers.delete(t); fn() }, ms)
    t.unref()
    this.#timers.add(t)
  }
}
