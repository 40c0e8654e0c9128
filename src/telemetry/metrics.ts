// One agent's Prometheus metrics: its own registry (never prom-client's global one: several
// agents share a process in tests and embeddings), call metrics pushed by the call path's events,
// the rest read at scrape time from the counters the node keeps.
import { Counter, Registry } from 'prom-client'
import { callMetrics } from './call-metrics.ts'
import { pulledMetrics } from './pulled-metrics.ts'
import type { MetricsSource } from './pulled-metrics.ts'
import type { CallEvents } from './events.ts'

export type { MetricsSource } from './pulled-metrics.ts'

/** The topology replica as metrics watch it: its members, and a change feed. */
export interface WatchedTopology {
  members(): Iterable<{ liveness: string }>
  onChange(listener: (c: { before: string | undefined, after: string }) => void): () => void
}

/** An agent's metrics. */
export interface MeshMetrics {
  /** Observers to hand the call path: the caller's `callEnded`, the tool registry's `served`. */
  readonly events: CallEvents
  /** The content type of `text()` (the Prometheus text format, 0.0.4). */
  readonly contentType: string
  /** Every metric now, in the Prometheus text format. */
  text(): Promise<string>
  /**
   * Follows the topology replica once the member runs: members by liveness, members declared
   * dead, and suspicions refuted (a suspect member alive again).
   */
  watch(topology: WatchedTopology): void
}

/** Creates an agent's metrics; `source` is read at scrape time only. */
export function createMetrics (source: Omit<MetricsSource, 'members'>): MeshMetrics {
  const registry = new Registry()
  const events = callMetrics(registry)
  let topology: WatchedTopology | undefined
  pulledMetrics(registry, { ...source, members: () => topology?.members() })
  const registers = [registry]
  const dead = new Counter({ name: 'mcp_mesh_members_declared_dead_total', help: 'Times this agent\'s replica declared a member dead.', registers })
  const refuted = new Counter({ name: 'mcp_mesh_suspicions_refuted_total', help: 'Times a suspect member in this agent\'s replica came back alive (the suspicion was refuted).', registers })
  return {
    events,
    contentType: registry.contentType,
    text: async () => await registry.metrics(),
    watch (t) {
      topology = t
      t.onChange((c) => {
        if (c.after === 'dead' && c.before !== 'dead') dead.inc()
        else if (c.before === 'suspect' && c.after === 'alive') refuted.inc()
      })
    },
  }
}
