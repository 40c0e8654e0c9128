import { McpHttpClient } from '../proxy/mcp-client.ts'
import { SPANS_METHOD, TraceIdSchema } from '../telemetry/span-query.ts'
import type { SpansResult } from '../telemetry/span-query.ts'
import type { SpanRecord } from '../telemetry/span-ring.ts'
import type { Member } from '../topology/advert.ts'
import { Exit, UsageError, commaList, painter, parse } from './args.ts'
import { common, observe } from './observe.ts'
import { cliTls } from './identity.ts'
import { escapeControls, toJson } from './print.ts'
import { traceTree } from './trace-tree.ts'

export const TRACE_HELP = `Usage: meshctl trace <trace-id> [options]

Prints the tree of one trace: every call served and every call made through a dependency, with
its agent, duration, attempts and errors, from the spans the agents themselves keep (no tracing
backend needed). It asks the agents named by --from, then every agent their spans name as a
peer; without --from, every live agent. \`meshctl call --trace\` prints the ID of its call's trace.
  --from <agents>        agent names to start from (comma list)
  --json                 print {"traceId", "spans", "agents", "unanswered"} as JSON
  --cert, --key, --ca     the SVID, key and trust bundle to ask with (agents answer only their own
                         trust domain, and the readers they name in tracing.readers)
  --bootstrap, --mesh, --timeout (join timeout, ms) as for every command

Example: meshctl trace 4bf92f3577b34da6a3ce929d0e0e4736
Exit codes: 0 ok, 1 no agent kept a span of it, 2 usage, 3 mesh unreachable.`

/** How long one agent gets to answer. */
const ASK_MS = 3_000

/** `meshctl trace`: a trace's tree, gathered from the agents. */
export async function traceCommand (argv: string[]): Promise<number> {
  const { values, positionals } = parse(argv, { ...common, from: { type: 'string', multiple: true } })
  if (values.help === true) { console.log(TRACE_HELP); return Exit.ok }
  const id = TraceIdSchema.safeParse(positionals[0]?.toLowerCase())
  if (!id.success) throw new UsageError(`trace needs a trace ID (32 hex digits, as \`meshctl call --trace\` prints), got "${positionals[0] ?? ''}"`)
  const traceId = id.data
  const tls = await cliTls(values)
  const node = await observe(values, tls)
  const client = new McpHttpClient({ clientName: 'meshctl', ...(tls === undefined ? {} : { tls: { trustDomain: tls.trustDomain, context: () => tls.context } }) })
  try {
    const members = [...node.replica.members()].filter((m) => m.advert.endpoint !== undefined && m.liveness !== 'dead' && m.liveness !== 'left')
    const from = commaList(values.from)
    const { spans, asked, unanswered } = await gather(client, members, traceId, from)
    if (values.json === true) {
      console.log(toJson({ traceId, spans, agents: asked, unanswered }))
    } else {
      const p = painter()
      console.log(p.dim(`trace ${traceId}: ${spans.length} spans from ${new Set(spans.map((s) => s.agent)).size} agents`))
      for (const line of traceTree(spans, p)) console.log(line)
      for (const u of unanswered) console.log(p.yellow(`${escapeControls(u.agent)} did not answer: ${escapeControls(u.why)}`))
    }
    return spans.length > 0 ? Exit.ok : Exit.failure
  } finally {
    await client.close()
    await node.stop()
  }
}

/**
 * Asks agents for the trace's spans, breadth first: the `from` agents (or all), then every
 * agent a span names as the peer of an attempt that was not asked yet.
 */
async function gather (client: McpHttpClient, members: Member[], traceId: string, from: string[]): Promise<{ spans: SpanRecord[], asked: string[], unanswered: Array<{ agent: string, why: string }> }> {
  const byPeer = new Map(members.map((m) => [m.advert.peerId, m]))
  const spans = new Map<string, SpanRecord>()
  const asked = new Set<string>()
  const unanswered: Array<{ agent: string, why: string }> = []
  let next = from.length === 0 ? members : members.filter((m) => from.includes(m.advert.name))
  if (from.length > 0 && next.length === 0) throw new UsageError(`no live agent is named ${from.join(', ')}`)
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
