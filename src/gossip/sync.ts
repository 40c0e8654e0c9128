import { z } from 'zod'
import type { AbortOptions } from '@libp2p/interface'
import { END_OF_STREAM } from './net.ts'
import { ViewSchema, jsonFrames } from './frames.ts'
import type { ByteCounter, View } from './frames.ts'
import type { FrameStream } from './net.ts'
import type { Replica, ReplicaEntry } from '../topology/replica.ts'
import { DIGEST_BUCKETS } from '../topology/digest.ts'
import { compareVersions } from '../topology/advert.ts'
import { MeshError } from '../errors.ts'
import { MAX_NOTICE_BYTES, MAX_NOTICES } from './notices.ts'
import type { Notices } from './notices.ts'

/** The sync protocol of a mesh: join snapshots and anti-entropy. */
export function syncProtocol (mesh: string): string {
  return `/mcp-mesh/${mesh}/sync/1`
}

const VersionSchema = z.object({ i: z.number().int(), s: z.number().int() }).optional()
const NoticeDigest = z.string().max(64).optional()
const NoticeList = z.array(z.string().max(MAX_NOTICE_BYTES)).max(MAX_NOTICES)

// Frames are read tolerantly (unknown fields ignored), with limits on list sizes.
const Request = z.discriminatedUnion('t', [
  z.object({ t: z.literal('digest'), root: z.string().max(64), me: VersionSchema, you: ViewSchema, n: NoticeDigest }),
  z.object({ t: z.literal('push'), env: z.string().max(200_000) }),
  z.object({ t: z.literal('notices'), items: NoticeList }),
  z.object({ t: z.literal('pull'), b: z.array(z.number().int().min(0).max(DIGEST_BUCKETS - 1)).max(DIGEST_BUCKETS), have: z.array(z.tuple([z.string().max(128), z.number().int(), z.number().int()])).max(100_000) }),
  z.object({ t: z.literal('more'), after: z.string().max(128) }),
])
const Reply = z.discriminatedUnion('t', [
  z.object({ t: z.literal('equal'), wantMe: z.boolean().optional(), you: ViewSchema, n: NoticeDigest, notices: NoticeList.optional() }),
  z.object({ t: z.literal('buckets'), b: z.array(z.string().max(64)).length(DIGEST_BUCKETS), wantMe: z.boolean().optional(), you: ViewSchema, n: NoticeDigest, notices: NoticeList.optional() }),
  z.object({ t: z.literal('ok') }),
  z.object({ t: z.literal('page'), items: z.array(z.union([z.string().max(200_000), z.tuple([z.string().max(128), z.number().int()])])).max(10_000), next: z.string().max(128).optional() }),
  z.object({ t: z.literal('error'), code: z.string().max(64) }),
])
type RequestFrame = z.infer<typeof Request>
type ReplyFrame = z.infer<typeof Reply>

/** What sync needs from the node that runs it. */
export interface SyncContext {
  replica: Replica
  /** This node's own signed advert and its version (undefined for observers). */
  self(): { envelope: Uint8Array, i: number, s: number } | undefined
  /** How this node sees `peerId`, when not alive (sent so the peer can refute). */
  viewOf(peerId: string): View | undefined
  /** A peer told us how it sees us. */
  onView(view: View, from: string): void
  /** A peer holds `peerId` dead at `incarnation` while we hold it up: verify it ourselves. */
  onDeadHint(peerId: string, incarnation: number): void
  /** Verifies and merges one signed message received by sync. */
  ingest(envelope: Uint8Array, from: string): Promise<void>
  /** The notices this node holds and checks (revocations); absent: it neither sends nor takes any. */
  notices?: Notices
  /** Rate limit per requesting peer. */
  allow(peerId: string): boolean
  pageSize: number
  maxFrameBytes: number
  /** Bytes of sync frames sent and received (measured by tests and benchmarks). */
  bytes: ByteCounter
}

/** What one sync exchange did. */
export interface SyncResult {
  equal: boolean
  pulled: number
  pages: number
}

const b64 = (u: Uint8Array): string => Buffer.from(u.buffer, u.byteOffset, u.byteLength).toString('base64')

/**
 * Runs one exchange as the requester: digests first; only buckets that differ are paged through.
 * `full` asks for everything (a join snapshot). Pushes our own advert when the peer lacks it.
 */
export async function requestSync (stream: FrameStream, remote: string, ctx: SyncContext, full: boolean, options: AbortOptions): Promise<SyncResult> {
  const io = jsonFrames<RequestFrame | ReplyFrame>(stream, ctx.bytes, 'sync', options)
  const me = ctx.self()
  const notices = ctx.notices
  await io.send({ t: 'digest', root: full ? '' : ctx.replica.digestRoot(), me: me === undefined ? undefined : { i: me.i, s: me.s }, you: ctx.viewOf(remote), n: notices?.digest() })
  const first = await io.recv(Reply)
  if (first.t === 'error') throw new MeshError('MESH_ERR_SYNC_FAILED', `peer refused sync: ${first.code}`, { details: { code: first.code } })
  if (first.t !== 'equal' && first.t !== 'buckets') throw new MeshError('MESH_ERR_SYNC_FAILED', `unexpected sync frame ${first.t}`)
  if (first.you !== undefined) ctx.onView(first.you, remote)
  if (notices !== undefined && first.n !== undefined) {
    // Pull what the peer holds, then push what it still lacks: one exchange evens both sets.
    if (first.notices !== undefined) notices.offer(first.notices, remote)
    if (first.n !== notices.digest() && notices.list().length > 0) {
      await io.send({ t: 'notices', items: notices.list() })
      await io.recv(Reply)
    }
  }
  if (first.wantMe === true && me !== undefined) {
    await io.send({ t: 'push', env: b64(me.envelope) })
    await io.recv(Reply)
  }
  const result: SyncResult = { equal: first.t === 'equal', pulled: 0, pages: 0 }
  if (first.t === 'equal') return result
  const mine = ctx.replica.digestBuckets()
  const diff = full ? [...mine.keys()] : [...mine.keys()].filter((i) => mine[i] !== first.b[i])
  if (diff.length === 0) return result
  const have = ctx.replica.inBuckets(new Set(diff))
    .filter((e) => e.liveness === 'alive' || e.liveness === 'suspect')
    .map((e): [string, number, number] => [e.advert.peerId, e.advert.incarnation, e.advert.seq])
  await io.send({ t: 'pull', b: diff, have })
  for (;;) {
    const page = await io.recv(Reply)
    if (page.t !== 'page') throw new MeshError('MESH_ERR_SYNC_FAILED', `unexpected sync frame ${page.t}`)
    result.pages++
    for (const item of page.items) {
      if (typeof item === 'string') {
        await ctx.ingest(Buffer.from(item, 'base64'), remote)
        result.pulled++
      } else if (item[0] === ctx.replica.selfId) {
        ctx.onView({ l: 'dead', i: item[1] }, remote)
      } else {
        ctx.onDeadHint(item[0], item[1])
      }
    }
    if (page.next === undefined) return result
    await io.send({ t: 'more', after: page.next })
  }
}

/**
 * Serves one exchange on an inbound stream, until the requester closes it. The quota is taken once
 * per stream, and a stream is one exchange: at most one digest, one push and one pull, then pages
 * in order (each `more` resumes where the last page ended), so one stream's work is bounded by
 * the replica's size and cannot be replayed for as long as the stream lives.
 */
export async function serveSync (stream: FrameStream, remote: string, ctx: SyncContext, options: AbortOptions): Promise<void> {
  const io = jsonFrames<RequestFrame | ReplyFrame>(stream, ctx.bytes, 'sync', options)
  if (!ctx.allow(remote)) {
    await io.send({ t: 'error', code: 'rate-limited' })
    return
  }
  let pending: ReplicaEntry[] = []
  let theirs = new Map<string, [number, number]>()
  const seen = new Set<RequestFrame['t']>()
  /** Where the next page starts: the only `more` this stream may ask for. */
  let next: string | undefined
  for (;;) {
    let req: RequestFrame
    try {
      req = await io.recv(Request)
    } catch (err) {
      if ((err as Error).name === END_OF_STREAM) return // the requester is done
      throw err
    }
    if (req.t === 'more' ? req.after !== next : seen.has(req.t)) {
      await io.send({ t: 'error', code: 'out-of-order' })
      return
    }
    seen.add(req.t)
    if (req.t === 'digest') {
      if (req.you !== undefined) ctx.onView(req.you, remote)
      const known = ctx.replica.get(remote)
      const wantMe = req.me !== undefined && (known === undefined || compareVersions({ incarnation: req.me.i, seq: req.me.s }, known.advert) > 0)
      const you = ctx.viewOf(remote)
      // Notices only to a requester that speaks them (it sent a digest), and only when the sets differ.
      const n = req.n === undefined ? undefined : ctx.notices?.digest()
      const notices = n !== undefined && n !== req.n && n !== '' ? { n, notices: ctx.notices!.list() } : n === undefined ? {} : { n }
      await io.send(req.root === ctx.replica.digestRoot()
        ? { t: 'equal', wantMe, you, ...notices }
        : { t: 'buckets', b: ctx.replica.digestBuckets(), wantMe, you, ...notices })
    } else if (req.t === 'notices') {
      ctx.notices?.offer(req.items, remote)
      await io.send({ t: 'ok' })
    } else if (req.t === 'push') {
      await ctx.ingest(Buffer.from(req.env, 'base64'), remote)
      await io.send({ t: 'ok' })
    } else {
      if (req.t === 'pull') {
        theirs = new Map(req.have.map(([p, i, s]) => [p, [i, s]]))
        pending = ctx.replica.inBuckets(new Set(req.b))
      } else {
        pending = pending.filter((e) => e.advert.peerId > req.after)
      }
      const reply = page(pending, theirs, ctx.pageSize, ctx.maxFrameBytes)
      next = reply.t === 'page' ? reply.next : undefined
      await io.send(reply)
    }
  }
}

/** Builds one page: what the requester lacks or has older, within the count and byte limits. */
function page (entries: ReplicaEntry[], theirs: Map<string, [number, number]>, pageSize: number, maxBytes: number): Extract<ReplyFrame, { t: 'page' }> {
  const items: Array<string | [string, number]> = []
  let bytes = 64
  for (const [idx, e] of entries.entries()) {
    const have = theirs.get(e.advert.peerId)
    let item: string | [string, number] | undefined
    if (e.liveness === 'alive' || e.liveness === 'suspect') {
      if (have === undefined || compareVersions(e.advert, { incarnation: have[0], seq: have[1] }) > 0) item = b64(e.envelope)
    } else if (have !== undefined && have[0] <= (e.downIncarnation ?? 0)) {
      // They still think it is up: a signed leave settles it; a death is only a hint (they verify).
      item = e.leaveEnvelope !== undefined ? b64(e.leaveEnvelope) : [e.advert.peerId, e.downIncarnation ?? 0]
    }
    if (item === undefined) continue
    const size = typeof item === 'string' ? item.length + 3 : 80
    if (items.length > 0 && (items.length >= pageSize || bytes + size > maxBytes / 2)) {
      // Entries are sorted by peer ID: the next page resumes after the entry before this one.
      return { t: 'page', items, next: entries[idx - 1].advert.peerId }
    }
    items.push(item)
    bytes += size
  }
  return { t: 'page', items }
}
