import { multiaddr } from '@multiformats/multiaddr'
import type { Multiaddr } from '@multiformats/multiaddr'
import { peerIdFromString } from '@libp2p/peer-id'
import { lpStream } from '@libp2p/utils'
import type { Connection, PeerId, Stream, AbortOptions } from '@libp2p/interface'
import { MeshError } from '../errors.ts'
import { createHost, advertTopic, TOPIC_VERDICT } from './host.ts'
import type { HostSeam, MeshHost } from './host.ts'
import { probeProtocol } from './probe.ts'
import { syncProtocol } from './sync.ts'
import type { FrameStream, MeshNet, MeshProtocol, NetEvents, NetInit } from './net.ts'
import { AdmissionGate, admissionProtocol, MAX_ADMISSION_FRAME } from './gate.ts'

/** An address where another peer, or no libp2p at all, answered is skipped this long. */
const WRONG_PEER_MS = 10 * 60_000

/** Errors that mean something answered at the address, but not this peer speaking libp2p. */
function wrongPeer (err: unknown): boolean {
  const name = (err as Error | undefined)?.name ?? ''
  return ['UnexpectedPeerError', 'InvalidCryptoExchangeError', 'EncryptionFailedError', 'UnsupportedProtocolError', 'ProtocolError', 'InvalidMessageError'].includes(name)
}

/** A libp2p stream as length-prefixed frames of at most `maxDataLength` bytes. */
export function lpFrames (stream: Stream, maxDataLength: number): FrameStream {
  const lp = lpStream(stream, { maxDataLength })
  return {
    read: async (options) => (await lp.read(options)).subarray(),
    write: async (frame, options) => { await lp.write(frame, options) },
    close: async (options) => { await stream.close(options) },
    abort: (err) => { stream.abort(err) },
  }
}

/** The production network: libp2p with gossipsub for adverts and two stream protocols. */
export async function createLibp2pNet (init: NetInit, seam: Omit<HostSeam, 'deny' | 'admission'> = {}): Promise<MeshNet> {
  let gate: AdmissionGate | undefined
  const admission = seam.admitter === undefined ? undefined : { admitted: (p: string) => gate!.isAdmitted(p), refused: (p: string) => gate!.isRefused(p) }
  const host = await createHost(init.options, init.privateKey, { ...seam, deny: init.deny, ...(admission === undefined ? {} : { admission }) })
  if (seam.admitter !== undefined) {
    gate = new AdmissionGate({
      admitter: seam.admitter,
      self: host.peerId.toString(),
      frames: (stream) => lpFrames(stream, MAX_ADMISSION_FRAME),
      protocol: admissionProtocol(init.options.mesh),
      onRefused: (peer, reason) => { init.onRefused?.(peer, reason) },
      // Its score may have been cached (for a heartbeat) before it was admitted. The cache is not in
      // gossipsub's public interface: without it, a new peer waits up to one heartbeat (1 s).
      onAdmitted: (peer) => { (host.services.pubsub as unknown as { score?: { scoreCache?: Map<string, unknown> } }).score?.scoreCache?.delete(peer) },
      hangUp: async (peer) => { await host.hangUp(peerIdFromString(peer)) },
    })
  }
  return new Libp2pNet(host, init, gate)
}

class Libp2pNet implements MeshNet {
  readonly #host: MeshHost
  readonly #init: NetInit
  readonly #topic: string
  readonly #protocols: Record<MeshProtocol, string>
  readonly #peerIds = new Map<string, PeerId>()
  /** Per peer: advertised addresses that failed, and until when they are skipped. */
  readonly #badAddrs = new Map<string, Map<string, number>>()
  readonly #gate: AdmissionGate | undefined
  #sweep?: ReturnType<typeof setInterval>

  constructor (host: MeshHost, init: NetInit, gate?: AdmissionGate) {
    this.#host = host
    this.#init = init
    this.#gate = gate
    const mesh = init.options.mesh
    this.#topic = advertTopic(mesh)
    this.#protocols = { sync: syncProtocol(mesh), probe: probeProtocol(mesh) }
  }

  get peerId (): string {
    return this.#host.peerId.toString()
  }

  addrs (): string[] {
    return this.#host.getMultiaddrs().map(String)
  }

  async start (events: NetEvents): Promise<void> {
    const host = this.#host
    const handlerOpts = { maxInboundStreams: 256, maxOutboundStreams: 256 }
    const gate = this.#gate
    for (const kind of ['sync', 'probe'] as const) {
      await host.handle(this.#protocols[kind], async (stream, conn) => {
        const from = conn.remotePeer.toString()
        // A peer's first streams may race its admission exchange: they wait for it.
        if (gate !== undefined && !await gate.wait(from)) {
          stream.abort(new MeshError('MESH_ERR_NOT_ADMITTED', `${from} is not admitted to the mesh`))
          return
        }
        events.stream(kind, this.#frames(stream, kind), from)
      }, handlerOpts)
    }
    if (gate !== undefined) {
      await host.handle(admissionProtocol(this.#init.options.mesh), async (stream, conn) => { await gate.serve(stream, conn) }, handlerOpts)
      host.addEventListener('connection:open', (evt) => { gate.onConnection(evt.detail) })
      this.#sweep = setInterval(() => { gate.sweep() }, 5_000)
      this.#sweep.unref()
    }
    await host.start()
    const pubsub = host.services.pubsub
    pubsub.topicValidators.set(this.#topic, async (from, msg) => {
      const peer = from.toString()
      // A message a member forwards as its admission completes waits for it: rejected, it would be
      // marked seen and lost when others forward it too.
      if (gate !== undefined && !await gate.wait(peer)) {
        this.#init.onRefused?.(peer, 'gossip from a peer not admitted')
        return TOPIC_VERDICT.reject
      }
      return TOPIC_VERDICT[await events.validate(peer, msg.data, msg.type !== 'unsigned')]
    })
    pubsub.subscribe(this.#topic)
    pubsub.addEventListener('subscription-change', (evt) => {
      if (evt.detail.subscriptions.some((s) => s.subscribe && s.topic === this.#topic)) events.subscribed()
    })
    host.addEventListener('peer:disconnect', (evt) => {
      gate?.forget(evt.detail.toString())
      events.disconnected(evt.detail.toString())
    })
  }

  recheck (): void {
    this.#gate?.liftBars()
    this.#gate?.sweep()
  }

  /** Proves this node's renewed identity again on every connection. */
  async reprove (): Promise<void> {
    const gate = this.#gate
    if (gate === undefined) return
    await Promise.all(this.#host.getConnections().filter((c) => c.status === 'open').map(async (c) => gate.exchange(c, true)))
  }

  async stop (): Promise<void> {
    clearInterval(this.#sweep)
    this.#gate?.stop()
    this.#host.services.pubsub.topicValidators.clear()
    await this.#host.stop()
  }

  async publish (data: Uint8Array): Promise<number> {
    const { recipients } = await this.#host.services.pubsub.publish(this.#topic, data)
    return recipients.length
  }

  subscribers (): number {
    return this.#host.services.pubsub.getSubscribers(this.#topic).length
  }

  connections (): string[] {
    const out = new Set<string>()
    for (const c of this.#host.getConnections()) if (c.status === 'open') out.add(c.remotePeer.toString())
    return [...out]
  }

  isConnected (peerId: string): boolean {
    return this.#host.getConnections(this.#pid(peerId)).some((c) => c.status === 'open')
  }

  async dial (peerId: string, addrs: readonly string[], options: AbortOptions): Promise<void> {
    await this.#connect(peerId, addrs, options)
  }

  /**
   * An open connection to the peer, or a new one through its advertised addresses, one at a time
   * so each failure is known by address: an address where something other than this peer answered
   * (a handshake or protocol failure) is skipped for 10 minutes. Members choose the addresses
   * everyone dials: this keeps the mesh from knocking on another service again and again.
   */
  async #connect (peerId: string, addrs: readonly string[], options: AbortOptions): Promise<Connection> {
    const open = this.#host.getConnections(this.#pid(peerId)).find((c) => c.status === 'open')
    if (open !== undefined) return open
    if (addrs.length === 0) return this.#host.dial(this.#pid(peerId), options) // identify's addresses, if any
    const now = Date.now()
    const bad = this.#badAddrs.get(peerId)
    const candidates = this.#multiaddrs(peerId, addrs).filter((ma) => (bad?.get(ma.toString()) ?? 0) <= now).slice(0, this.#init.options.quota.maxDialAddrs)
    if (candidates.length === 0) throw new MeshError('MESH_ERR_DIAL_LIMITED', `no address of ${peerId} is worth dialling: another peer, or no libp2p, answered at each`)
    let last: unknown
    for (const ma of candidates) {
      try {
        return await this.#host.dial(ma, options)
      } catch (err) {
        last = err
        if (options.signal?.aborted === true) break
        // Refused, unreachable or timed out says nothing about who is there (a partition that
        // heals, a restarting agent): tried again on the next dial, within the member's dial quota.
        if (wrongPeer(err)) this.#markBad(peerId, ma.toString(), now + WRONG_PEER_MS)
      }
    }
    throw last
  }

  #markBad (peerId: string, addr: string, until: number): void {
    let m = this.#badAddrs.get(peerId)
    if (m === undefined) {
      if (this.#badAddrs.size >= 10_000) this.#badAddrs.clear() // bounded: forgetting only means a retry
      this.#badAddrs.set(peerId, m = new Map())
    }
    m.set(addr, until)
  }

  async dialAddress (addr: string, options: AbortOptions): Promise<string> {
    const conn = await this.#host.dial(multiaddr(addr), options)
    return conn.remotePeer.toString()
  }

  async hangUp (peerId: string): Promise<void> {
    await this.#host.hangUp(this.#pid(peerId))
  }

  async open (peerId: string, protocol: MeshProtocol, addrs: readonly string[], options: AbortOptions): Promise<FrameStream> {
    const conn = await this.#connect(peerId, addrs, options)
    return this.#frames(await conn.newStream(this.#protocols[protocol], options), protocol)
  }

  #frames (stream: Stream, protocol: MeshProtocol): FrameStream {
    return lpFrames(stream, this.#init.maxFrameBytes[protocol])
  }

  #multiaddrs (peerId: string, addrs: readonly string[]): Multiaddr[] {
    const out: Multiaddr[] = []
    for (const a of addrs) {
      try {
        const ma = multiaddr(a)
        out.push(a.includes('/p2p/') ? ma : ma.encapsulate(`/p2p/${peerId}`))
      } catch { /* an unparsable address is skipped; others may work */ }
    }
    return out
  }

  #pid (peerId: string): PeerId {
    let id = this.#peerIds.get(peerId)
    if (id === undefined) {
      if (this.#peerIds.size >= 10_000) this.#peerIds.clear() // a parse cache, not state: bounded
      id = peerIdFromString(peerId)
      this.#peerIds.set(peerId, id)
    }
    return id
  }
}
