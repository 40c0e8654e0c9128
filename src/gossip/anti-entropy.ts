import { logger } from '../telemetry/log.ts'
import type { Logger } from '../telemetry/log.ts'
import type { AbortOptions } from '@libp2p/interface'
import type { GossipOptions } from '../config.ts'
import type { Replica } from '../topology/replica.ts'
import type { Adverts } from './adverts.ts'
import type { FrameStream } from './net.ts'
import type { Peers } from './peers.ts'
import type { Prober } from './prober.ts'
import { Quota } from './quota.ts'
import type { TaskScope } from './scope.ts'
import type { GossipStats } from './stats.ts'
import type { Notices } from './notices.ts'
import { requestSync, serveSync } from './sync.ts'
import type { SyncContext, SyncResult } from './sync.ts'

const log = logger('mesh:gossip')

/** What anti-entropy is built from. */
export interface AntiEntropyInit {
  options: GossipOptions
  replica: Replica
  peers: Peers
  scope: TaskScope
  adverts: Adverts
  prober: Prober
  stats: GossipStats
  /** Verifies and merges one signed message received by sync. */
  ingest: (envelope: Uint8Array, from: string) => Promise<void>
  /** Largest sync frame, in bytes. */
  maxFrameBytes: number
  /** Fault injection (simulations): true loses a peer's view of this node. */
  lose?: (from: string) => boolean
  /** The notices this node exchanges in every sync (revocations). */
  notices?: Notices
}

/** A sync exchange may take this long before it is abandoned. */
const SYNC_TIMEOUT_MS = 5_000
/** An inbound sync stream is served at most this long. */
const SERVE_TIMEOUT_MS = 10_000
/** How many neighbours a node syncs with at once when it learns a new notice. */
const NOTICE_FANOUT = 3

/**
 * The sync protocol's two sides: join snapshots and periodic anti-entropy with a random
 * neighbour (digests first, then only what differs), and serving other members' requests
 * within a rate limit per peer.
 */
export class AntiEntropy {
  /** Its lines carry the agent's name: several nodes may share a process. */
  readonly #log: Logger
  readonly #i: AntiEntropyInit
  readonly #ctx: SyncContext

  constructor (init: AntiEntropyInit) {
    this.#log = log.child({ agent: init.options.name })
    this.#i = init
    const { options: o, replica, peers, adverts, prober, stats } = init
    const q = o.quota
    const quota = new Quota({ clock: init.scope.clock, perMinute: q.syncPerMinute, burst: Math.max(10, q.syncPerMinute / 6) })
    const notices = init.notices
    this.#ctx = {
      ...(notices === undefined
        ? {}
        : {
            notices: {
              ...notices,
              digest: () => notices.digest(),
              list: () => notices.list(),
              offer: (items, from) => {
                const r = notices.offer(items, from)
                stats.notices.accepted += r.accepted
                stats.notices.dropped += r.dropped
                return r
              },
            } satisfies Notices,
          }),
      replica,
      self: () => {
        const s = adverts.self
        return s === undefined ? undefined : { envelope: s.envelope, i: s.advert.incarnation, s: s.advert.seq }
      },
      viewOf: (p) => peers.viewOf(p),
      onView: (v, from) => { if (init.lose?.(from) !== true) adverts.onView(v) },
      onDeadHint: (p, inc) => { prober.onDeadHint(p, inc) },
      ingest: init.ingest,
      allow: (p) => {
        if (quota.take(p)) return true
        stats.refused.sync++
        return false
      },
      pageSize: q.syncPageSize,
      maxFrameBytes: init.maxFrameBytes,
      bytes: stats.syncBytes,
    }
  }

  /** Runs one exchange with a peer (`full`: a whole snapshot, as on joining). */
  async syncWith (peerId: string, full = false, options: AbortOptions = {}): Promise<SyncResult> {
    const res = await this.#exchange(peerId, options, async (stream, signal) => requestSync(stream, peerId, this.#ctx, full, { signal }))
    this.#i.stats.syncs++
    return res
  }

  /** One anti-entropy round with a random neighbour. */
  tick (): void {
    const peers = this.#i.peers.neighbours().filter((p) => p !== this.#i.peers.selfId)
    const target = peers[Math.floor(this.#i.scope.random() * peers.length)]
    if (target !== undefined) this.syncWith(target).catch((err: Error) => { this.#log('anti-entropy with %s failed: %s', target, err.message) })
  }

  /** Syncs with a few random neighbours now: a notice learnt here reaches them in one exchange each. */
  spread (): void {
    const peers = this.#i.peers.neighbours().filter((p) => p !== this.#i.peers.selfId)
    for (let n = 0; n < NOTICE_FANOUT && peers.length > 0; n++) {
      const [target] = peers.splice(Math.floor(this.#i.scope.random() * peers.length), 1)
      this.syncWith(target).catch((err: Error) => { this.#log('spreading notices to %s failed: %s', target, err.message) })
    }
  }

  /** Serves one inbound sync stream. */
  async onStream (stream: FrameStream, from: string): Promise<void> {
    await this.#i.scope.bounded(SERVE_TIMEOUT_MS, {}, async (signal) => {
      await serveSync(stream, from, this.#ctx, { signal })
      await stream.close({ signal }).catch(() => {})
    }).catch((err: Error) => {
      this.#log('sync from %s failed: %s', from, err.message)
      stream.abort(err)
    })
  }

  /** Opens a stream, runs one exchange on it, and always closes it (aborts it on failure): no stream leaks. */
  async #exchange<T> (peerId: string, options: AbortOptions, fn: (stream: FrameStream, signal: AbortSignal) => Promise<T>): Promise<T> {
    return this.#i.scope.bounded(SYNC_TIMEOUT_MS, options, async (signal) => {
      const stream = await this.#i.peers.open(peerId, 'sync', signal)
      try {
        const res = await fn(stream, signal)
        await stream.close({ signal }).catch(() => { stream.abort(new Error('close failed')) })
        return res
      } catch (err) {
        stream.abort(err as Error)
        throw err
      }
    })
  }
}
