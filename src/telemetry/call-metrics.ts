// Calls, counted as they end (the call path's events): the only metrics pushed on the hot path.
// Everything else is read at scrape time (pulled-metrics.ts).
import { Counter, Histogram } from 'prom-client'
import type { Registry } from 'prom-client'
import type { CallEvents } from './events.ts'

/** Latency buckets in seconds: a local or loopback call (0.5 ms) to the default call timeout (30 s). */
export const CALL_BUCKETS = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30]

/**
 * Label sets one call metric keeps at most. Capabilities are the ones this agent calls, providers
 * the agents that serve them, outcomes `ok` or an error code: few in practice. But a provider
 * chooses the codes it answers with and `node.call` takes any spec, so past this many every new
 * combination is counted under `other`, and a scrape stays bounded whatever the mesh does.
 */
export const MAX_SERIES = 1_000

/** The label value for an overflowing label set, and for a call that reached no provider. */
const OTHER = 'other'
const NONE = 'none'

/** Label objects by their values, at most MAX_SERIES; the same object is reused for every call. */
class LabelSets<L extends Record<string, string>> {
  readonly #sets = new Map<string, L>()
  readonly #overflow: L

  constructor (overflow: L) {
    this.#overflow = overflow
  }

  get (key: string, make: () => L): L {
    let labels = this.#sets.get(key)
    if (labels === undefined) {
      if (this.#sets.size >= MAX_SERIES) return this.#overflow
      this.#sets.set(key, labels = make())
    }
    return labels
  }
}

/**
 * Registers the call metrics on `registry` and returns the observers that feed them: hand them
 * to the caller (`callEnded`) and the tool registry (`served`). The caller's identity is never a
 * label: callers are unbounded, the tools an agent serves are not.
 */
export function callMetrics (registry: Registry): Required<CallEvents> {
  const registers = [registry]
  const calls = new Counter({ name: 'mcp_mesh_calls_total', help: 'Calls this agent made through injected tools, after all their attempts, by capability, provider (agent name, "none" when no provider was tried) and outcome (ok or the error code).', labelNames: ['capability', 'provider', 'outcome'], registers })
  const callSeconds = new Histogram({ name: 'mcp_mesh_call_duration_seconds', help: 'Time from a call through an injected tool to its end, all attempts included.', labelNames: ['capability', 'provider', 'outcome'], buckets: CALL_BUCKETS, registers })
  const served = new Counter({ name: 'mcp_mesh_served_calls_total', help: 'Calls of this agent\'s tools it served, by tool and outcome (ok or the error code).', labelNames: ['tool', 'outcome'], registers })
  const servedSeconds = new Histogram({ name: 'mcp_mesh_served_call_duration_seconds', help: 'Time this agent took to serve a call of one of its tools.', labelNames: ['tool', 'outcome'], buckets: CALL_BUCKETS, registers })
  const callLabels = new LabelSets({ capability: OTHER, provider: OTHER, outcome: OTHER })
  const servedLabels = new LabelSets({ tool: OTHER, outcome: OTHER })
  return {
    callEnded (e) {
      const provider = e.agent ?? NONE
      const labels = callLabels.get(`${e.capability}\0${provider}\0${e.outcome}`, () => ({ capability: e.capability, provider, outcome: e.outcome }))
      calls.inc(labels, 1)
      callSeconds.observe(labels, e.ms / 1000)
    },
    served (e) {
      const labels = servedLabels.get(`${e.tool}\0${e.outcome}`, () => ({ tool: e.tool, outcome: e.outcome }))
      served.inc(labels, 1)
      servedSeconds.observe(labels, e.ms / 1000)
    },
  }
}
