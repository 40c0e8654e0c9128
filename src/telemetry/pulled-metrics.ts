// Metrics read at scrape time from counters the node keeps anyway (prom-client `collect`
// callbacks): nothing is added to the call or gossip paths for them.
import { Counter, Gauge } from 'prom-client'
import type { Registry } from 'prom-client'

/** Bytes in and out. */
export interface Bytes { in: number, out: number }

/**
 * What the metrics read from a node, each when Prometheus asks. Plain shapes (the node's
 * `CallStats`, `Endpoint`, `GossipNode` fit them), so telemetry imports nothing above it.
 */
export interface MetricsSource {
  /** The caller's counters (`node.stats`). */
  calls(): { retries: number, failovers: number, hedges: number, hedgesWon: number }
  /** Providers whose circuits (this caller's breakers) are open and half-open now. */
  circuits(): { open: number, halfOpen: number }
  /** Sockets open to providers (the keep-alive pools). */
  outboundConnections(): number
  /** The MCP endpoint, once started. */
  endpoint(): { stats: { dropped: Record<string, number> }, inflight: number, connections(): Promise<number> } | undefined
  /** The gossip member, once created. */
  gossip(): {
    stats: {
      dropped: Partial<Record<string, number>>, accepted: number, published: number, probes: number, probeFailures: number,
      suspicionsRaised: number, refutations: number, syncs: number, gossipBytes: Bytes, syncBytes: Bytes, probeBytes: Bytes,
      refused: { sync: number, probe: number, admission: number },
    }
    neighbours(): string[]
  } | undefined
  /** Members of the topology replica with their liveness, once the member runs. */
  members(): Iterable<{ liveness: string }> | undefined
}

type Rows = Array<[Record<string, string>, number]>
type Read = () => number | Rows | undefined | Promise<number | Rows | undefined>

/** Reads `read` into a metric just reset: a number (no labels), or rows of labels and values. */
async function fill (read: Read, put: (labels: Record<string, string>, n: number) => void): Promise<void> {
  const v = await read()
  if (typeof v === 'number') put({}, v)
  else for (const [labels, n] of v ?? []) put(labels, n)
}

/** A counter (or gauge) whose values are read at scrape time. */
function pulled (registry: Registry, kind: 'counter' | 'gauge', name: string, help: string, labelNames: string[], read: Read): void {
  const config = { name, help, labelNames, registers: [registry] }
  if (kind === 'counter') new Counter({ ...config, async collect () { this.reset(); await fill(read, (l, n) => { this.inc(l, n) }) } })
  else new Gauge({ ...config, async collect () { this.reset(); await fill(read, (l, n) => { this.set(l, n) }) } })
}

/** Rows of one label from a record of counts. */
const by = (label: string, counts: Partial<Record<string, number>>): Rows =>
  Object.entries(counts).map(([k, n]) => [{ [label]: k }, n ?? 0])

/** Registers every metric read at scrape time from `source`. */
export function pulledMetrics (registry: Registry, source: MetricsSource): void {
  const c = (name: string, help: string, read: Read, labels: string[] = []): void => { pulled(registry, 'counter', name, help, labels, read) }
  const g = (name: string, help: string, read: Read, labels: string[] = []): void => { pulled(registry, 'gauge', name, help, labels, read) }
  const gossip = source.gossip

  // Calls: policy at work.
  c('mcp_mesh_call_retries_total', 'Times a call was sent again after it failed (retries).', () => source.calls().retries)
  c('mcp_mesh_call_failovers_total', 'Times a call went to the next provider: refused before sending, or lost mid-call.', () => source.calls().failovers)
  c('mcp_mesh_call_hedges_total', 'Second attempts sent because the first was slow (hedgeAfterMs).', () => source.calls().hedges)
  c('mcp_mesh_call_hedges_won_total', 'Hedged calls the second attempt answered first.', () => source.calls().hedgesWon)
  g('mcp_mesh_circuits', 'Providers whose circuit this agent\'s breakers hold open or half-open now (closed ones are not counted).', () => {
    const { open, halfOpen } = source.circuits()
    return [[{ state: 'open' }, open], [{ state: 'half-open' }, halfOpen]]
  }, ['state'])
  g('mcp_mesh_connections', 'Open connections: inbound to the MCP endpoint, outbound to providers (pooled), and gossip (libp2p neighbours).', async () => [
    [{ kind: 'inbound' }, await source.endpoint()?.connections() ?? 0],
    [{ kind: 'outbound' }, source.outboundConnections()],
    [{ kind: 'gossip' }, gossip()?.neighbours().length ?? 0],
  ], ['kind'])

  // The endpoint.
  g('mcp_mesh_inflight_requests', 'Requests the MCP endpoint is serving now, POST bodies still arriving included.', () => source.endpoint()?.inflight ?? 0)
  c('mcp_mesh_endpoint_refused_total', 'Requests and connections the endpoint refused or dropped, by reason (busy, draining, tls-*, not-authorized...).', () => by('reason', source.endpoint()?.stats.dropped ?? {}), ['reason'])

  // Gossip and membership.
  c('mcp_mesh_gossip_accepted_total', 'Gossip messages received (adverts, leaves, suspicions) that changed the topology replica.', () => gossip()?.stats.accepted)
  c('mcp_mesh_gossip_dropped_total', 'Gossip messages received and rejected, by reason (signature, quota, too-old...).', () => by('reason', gossip()?.stats.dropped ?? {}), ['reason'])
  c('mcp_mesh_adverts_published_total', 'Adverts of this agent published (changes, re-issues, refutations).', () => gossip()?.stats.published)
  c('mcp_mesh_gossip_bytes_total', 'Bytes of mesh traffic by protocol (gossip payloads, sync, probes) and direction.', () => {
    const s = gossip()?.stats
    if (s === undefined) return undefined
    const rows: Rows = []
    for (const [protocol, b] of [['gossip', s.gossipBytes], ['sync', s.syncBytes], ['probe', s.probeBytes]] as const) {
      rows.push([{ protocol, direction: 'in' }, b.in], [{ protocol, direction: 'out' }, b.out])
    }
    return rows
  }, ['protocol', 'direction'])
  c('mcp_mesh_syncs_total', 'Anti-entropy and join exchanges this agent made.', () => gossip()?.stats.syncs)
  c('mcp_mesh_gossip_refused_total', 'Peer requests refused by their quota (sync, probe) and peers refused admission.', () => {
    const r = gossip()?.stats.refused
    return r === undefined ? undefined : by('what', r)
  }, ['what'])
  c('mcp_mesh_probes_total', 'Failure-detection probes this agent sent.', () => gossip()?.stats.probes)
  c('mcp_mesh_probe_failures_total', 'Probes that got no answer, directly or through others.', () => gossip()?.stats.probeFailures)
  c('mcp_mesh_suspicions_raised_total', 'Members this agent suspected after a failed probe.', () => gossip()?.stats.suspicionsRaised)
  c('mcp_mesh_refutations_total', 'Suspicions of this agent it refuted (a new incarnation).', () => gossip()?.stats.refutations)
  g('mcp_mesh_members', 'Members of this agent\'s topology replica by liveness (tombstones of dead and left members included).', () => {
    const members = source.members()
    if (members === undefined) return undefined
    const counts: Record<string, number> = { alive: 0, suspect: 0, dead: 0, left: 0 }
    for (const m of members) counts[m.liveness] = (counts[m.liveness] ?? 0) + 1
    return by('liveness', counts)
  }, ['liveness'])
}
