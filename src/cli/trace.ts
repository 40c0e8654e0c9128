import { McpHttpClient } from '../proxy/mcp-client.ts'
import { TraceIdSchema } from '../telemetry/span-query.ts'
import { gatherTrace } from '../telemetry/trace-gather.ts'
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
    if (from.length > 0 && !members.some((m) => from.includes(m.advert.name))) throw new UsageError(`no live agent is named ${from.join(', ')}`)
    const { spans, asked, unanswered } = await gatherTrace(client, members, traceId, from)
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
