import { z } from 'zod'
import type { AbortOptions } from '@libp2p/interface'
import { END_OF_STREAM } from './net.ts'
import type { FrameStream } from './net.ts'
import { ViewSchema, jsonFrames } from './frames.ts'
import type { ByteCounter, JsonFrames, View } from './frames.ts'
import { MeshError } from '../errors.ts'

/**
 * The SWIM probe protocol of a mesh: ping, and ping-req (probe a member for me).
 * One long-lived stream per neighbour carries many probes: opening a libp2p stream costs about
 * 2.6 ms of CPU across both ends (negotiation, peer store, listeners), a frame a small fraction.
 */
export function probeProtocol (mesh: string): string {
  return `/mcp-mesh/${mesh}/probe/1`
}

const nonce = z.number().int().nonnegative()
const Frame = z.discriminatedUnion('t', [
  // d (pings and acks): the sender's neighbours, so those who may suspect it know how many can confirm (Replica.applySuspect).
  z.object({ t: z.literal('ping'), n: nonce, you: ViewSchema, d: z.number().int().nonnegative().max(1_000_000).optional() }),
  z.object({ t: z.literal('req'), n: nonce, target: z.string().min(1).max(128) }),
  z.object({ t: z.literal('ack'), n: nonce, you: ViewSchema, d: z.number().int().nonnegative().max(1_000_000).optional() }),
  z.object({ t: z.literal('nack'), n: nonce }),
])
type ProbeFrame = z.infer<typeof Frame>
/** How a probe request ended. */
export type Answer = 'ack' | 'nack' | 'none'

/** What the probe protocol needs from its node. */
export interface ProbeContext {
  viewOf(peerId: string): View | undefined
  onView(view: View, from: string): void
  /** How many neighbours this node has (sent in pings and acks). */
  degree(): number
  /** A neighbour said how many neighbours it has. */
  onDegree(degree: number, from: string): void
  /** An ack arrived for one of our pings that had already timed out. */
  onLateAck?(from: string): void
  /** Probes `target` directly on behalf of another member: `none` sends no answer (this node was too slow to judge). */
  probeFor(target: string, options: AbortOptions): Promise<Answer>
  bytes: ByteCounter
  /** The per-peer quota of probe frames: false drops this frame unanswered. */
  allow(from: string): boolean
  /** Fault injection (simulations): true loses this ping, so the prober sees no answer. */
  lose?: (from: string) => boolean
}

/** Largest probe frame, in bytes. */
export const MAX_PROBE_FRAME_BYTES = 1024

/**
 * The outbound side of a long-lived probe stream to one neighbour. Pings and ping-reqs carry a
 * nonce; a reader loop matches acks to them, so a late ack never answers a later probe; the ack of
 * a ping that timed out lately is reported (`onLateAck`).
 */
export class ProbeChannel {
  readonly #io: JsonFrames<ProbeFrame>
  readonly #remote: string
  readonly #ctx: ProbeContext
  readonly #stream: FrameStream
  readonly #pending = new Map<number, (answer: Answer) => void>()
  /** The last pings that timed out: their acks still say the neighbour is alive (`onLateAck`). */
  readonly #expired = new Set<number>()
  #next = 0
  #closed = false

  constructor (stream: FrameStream, remote: string, ctx: ProbeContext) {
    this.#stream = stream
    this.#remote = remote
    this.#ctx = ctx
    this.#io = jsonFrames(stream, ctx.bytes, 'probe')
    void this.#readLoop()
  }

  /** False once the stream failed or closed: open a new channel. */
  get open (): boolean {
    return !this.#closed
  }

  /** Pings the neighbour; true when it acknowledged before `options.signal` aborted. */
  async ping (options: AbortOptions): Promise<boolean> {
    let nonce = -1
    const answer = await this.#request((n) => { nonce = n; return { t: 'ping', n, you: this.#ctx.viewOf(this.#remote), d: this.#ctx.degree() } }, options)
    if (answer === 'ack') return true
    if (nonce >= 0 && !this.#closed) {
      this.#expired.add(nonce)
      if (this.#expired.size > 8) this.#expired.delete(this.#expired.values().next().value!) // the oldest
    }
    return false
  }

  /**
   * Asks the neighbour to probe `target`: `ack` it reached it, `nack` it could not, `none` no answer
   * in time. Lifeguard reads a missing nack as a sign that we ourselves are slow.
   */
  async pingReq (target: string, options: AbortOptions): Promise<Answer> {
    return this.#request((n) => ({ t: 'req', n, target }), options)
  }

  /** Ends the stream and fails every probe waiting on it. */
  close (err: Error = new MeshError('MESH_ERR_ABORTED', 'probe channel closed')): void {
    if (this.#closed) return
    this.#closed = true
    for (const resolve of this.#pending.values()) resolve('none')
    this.#pending.clear()
    this.#stream.abort(err)
  }

  async #request (frame: (n: number) => ProbeFrame, options: AbortOptions): Promise<Answer> {
    if (this.#closed) return 'none'
    const n = this.#next++
    const answered = new Promise<Answer>((resolve) => { this.#pending.set(n, resolve) })
    const signal = options.signal
    const onAbort = (): void => { this.#pending.get(n)?.('none') }
    signal?.addEventListener('abort', onAbort, { once: true })
    try {
      await this.#io.send(frame(n), options)
      return await answered
    } catch (err) {
      if (!(signal?.aborted ?? false)) this.close(err as Error) // a write failure means the stream is gone
      return 'none'
    } finally {
      this.#pending.delete(n)
      signal?.removeEventListener('abort', onAbort)
    }
  }

  async #readLoop (): Promise<void> {
    try {
      for (;;) {
        const f = await this.#io.recv(Frame)
        if (f.t !== 'ack' && f.t !== 'nack') throw new MeshError('MESH_ERR_WIRE_MALFORMED', `unexpected probe frame ${f.t}`)
        if (f.t === 'ack' && f.you !== undefined) this.#ctx.onView(f.you, this.#remote)
        if (f.t === 'ack' && f.d !== undefined) this.#ctx.onDegree(f.d, this.#remote)
        if (f.t === 'ack' && this.#expired.delete(f.n)) this.#ctx.onLateAck?.(this.#remote)
        this.#pending.get(f.n)?.(f.t)
      }
    } catch (err) {
      this.close(err as Error)
    }
  }
}

/** Answers probes on an inbound stream until the prober closes it or `options.signal` aborts. */
export async function serveProbe (stream: FrameStream, remote: string, ctx: ProbeContext, options: AbortOptions): Promise<void> {
  const io = jsonFrames<ProbeFrame>(stream, ctx.bytes, 'probe')
  for (;;) {
    let frame: ProbeFrame
    try {
      frame = await io.recv(Frame, options)
    } catch (err) {
      if ((err as Error).name === END_OF_STREAM) return
      throw err
    }
    if ((frame.t === 'ping' || frame.t === 'req') && !ctx.allow(remote)) continue
    if (frame.t === 'ping') {
      if (ctx.lose?.(remote) === true) continue
      if (frame.you !== undefined) ctx.onView(frame.you, remote)
      if (frame.d !== undefined) ctx.onDegree(frame.d, remote)
      await io.send({ t: 'ack', n: frame.n, you: ctx.viewOf(remote), d: ctx.degree() }, options)
    } else if (frame.t === 'req') {
      // Answered when done; later pings on this stream are not held up by it.
      const { n, target } = frame
      void ctx.probeFor(target, options).catch((): Answer => 'nack')
        .then(async (a) => { if (a !== 'none') await io.send(a === 'ack' ? { t: 'ack', n, you: undefined } : { t: 'nack', n }, options) })
        .catch(() => {})
    }
  }
}
