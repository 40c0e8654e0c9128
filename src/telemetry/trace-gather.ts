// Gathering one trace's spans from the agents that kept them (`meshctl trace`, `node.trace`):
// the agents asked first, then every agent their spans name as the peer of an attempt.
import type { McpHttpClient } from '../proxy/mcp-client.ts'
import type { Member } from '../topology/advert.ts'
import { SPANS_METHOD } from './span-query.ts'
import type { SpansResult } from './span-query.ts'
import type { SpanRecord } from './span-ring.ts'

/** How long one agent gets to answer. */
const ASK_MS = 3_000

/** A trace's spans, who was asked, and who did not answer (and why: unreachable, not authorized). */
export interface GatheredTrace {
  spans: SpanRecord[]
  asked: string[]
  unanswered: Array<{ agent: string, why: string }>
}

/**
 * Asks `members` for the spans of `traceId`, breadth first: those named in `from` (or all), then
 * every member a span names as the peer of an attempt that was not asked yet.
 */
export async function gatherTrace (client: McpHttpClient, members: Member[], traceId: string, from: string[] = []): Promise<GatheredTrace> {
  const byPeer = new Map(members.map((m) => [m.advert.peerId, m]))
  const spans = new Map<string, SpanRecord>()
  const asked = new Set<string>()
  const unanswered: Array<{ agent: string, why: string }> = []
  let next = from.length === 0 ? members : members.filter((m) => from.includes(m.advert.name))
  while (next.length > 0) {
    for (const m of next) asked.add(m.advert.peerId)
    const answers = await Promise.all(next.map(async (m) => {
      try {
        const identity = m.advert.identity
        const r = await client.request(m.advert.endpoint!, SPANS_METHOD, { traceId }, { timeoutMs: ASK_MS, ...(identity === undefined ? {} : { peer: { spiffeId: identity.id, keyHash: identity.key } }) }) as SpansResult
        return Array.isArray(r?.spans) ? r.spans : []
      } catch (err) {
        unanswered.push({ agent: m.advert.name, why: (err as Error).message })
        return []
      }
    }))
    const peers = new Set<string>()
    for (const s of answers.flat()) {
      spans.set(s.spanId, s)
      const peer = s.attributes?.['mesh.peer.id']
      if (typeof peer === 'string') peers.add(peer)
    }
    next = [...peers].filter((p) => !asked.has(p) && byPeer.has(p)).map((p) => byPeer.get(p)!)
  }
  return { spans: [...spans.values()], asked: [...asked].map((p) => byPeer.get(p)?.advert.name ?? p), unanswered }
}
