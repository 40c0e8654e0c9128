// Calls, counted as they end (the call path's events): the only metrics pushed on the hot path.
// Everything else is read at scrape time (pulled-metrics.ts). A call adds to plain numbers in a
// series found by nested map lookups (no label hashing, no allocation once the series exists);
// prom-client formats them only when Prometheus scrapes: its own inc and observe hash and validate
// the labels on every call, which cost the two ends of a call about 3 µs.
import { Counter } from 'prom-client'
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

/** One label set's calls: how many, their total seconds, and how many fell in each bucket (not cumulative). */
interface Series {
  readonly labels: Record<string, string>
  count: number
  sum: number
  readonly buckets: Float64Array
}

/** Series by their label values (a map level per label), at most MAX_SERIES; then `other`. */
class SeriesSet {
  readonly #root = new Map<string, unknown>()
  readonly #names: readonly string[]
  readonly #all: Series[] = []
  #overflow: Series | undefined

  constructor (names: readonly string[]) {
    this.#names = names
  }

  /** Counts one call of `seconds` under the label `values` (in the order of the names). */
  add (values: readonly string[], seconds: number): void {
    const s = this.#find(values)
    s.count++
    s.sum += seconds
    let i = 0
    while (i < CALL_BUCKETS.length && seconds > CALL_BUCKETS[i]) i++
    if (i < CALL_BUCKETS.length) s.buckets[i]++
  }

  /** Every series, the overflow last. */
  all (): Series[] {
    return this.#overflow === undefined ? this.#all : [...this.#all, this.#overflow]
  }

  #find (values: readonly string[]): Series {
    let level = this.#root
    const last = values.length - 1
    for (let i = 0; i < last; i++) {
      let next = level.get(values[i]) as Map<string, unknown> | undefined
      if (next === undefined) {
        if (this.#all.length >= MAX_SERIES) return this.#other()
        level.set(values[i], next = new Map())
      }
      level = next
    }
    let s = level.get(values[last]) as Series | undefined
    if (s === undefined) {
      if (this.#all.length >= MAX_SERIES) return this.#other()
      s = series(Object.fromEntries(this.#names.map((n, i) => [n, values[i]])))
      level.set(values[last], s)
      this.#all.push(s)
    }
    return s
  }

  #other (): Series {
    return (this.#overflow ??= series(Object.fromEntries(this.#names.map((n) => [n, OTHER]))))
  }
}

const series = (labels: Record<string, string>): Series => ({ labels, count: 0, sum: 0, buckets: new Float64Array(CALL_BUCKETS.length) })

/** A counter of the calls in `set`, read at scrape time. */
function countOf (registry: Registry, name: string, help: string, labelNames: string[], set: SeriesSet): void {
  new Counter({ name, help, labelNames, registers: [registry], collect () { this.reset(); for (const s of set.all()) this.inc(s.labels, s.count) } })
}

/**
 * A histogram of the calls in `set`, shaped at scrape time as prom-client shapes its own (cumulative
 * `_bucket` rows with `le`, then `+Inf`, `_sum` and `_count`); the registry takes any metric with
 * this interface.
 */
function histogramOf (registry: Registry, name: string, help: string, set: SeriesSet): void {
  const metric = {
    name,
    help,
    type: 'histogram',
    aggregator: 'sum',
    get: async () => {
      const values: Array<{ labels: Record<string, string | number>, value: number, metricName: string }> = []
      for (const s of set.all()) {
        let n = 0
        for (let i = 0; i < CALL_BUCKETS.length; i++) {
          n += s.buckets[i]
          values.push({ labels: { ...s.labels, le: CALL_BUCKETS[i] }, value: n, metricName: `${name}_bucket` })
        }
        values.push({ labels: { ...s.labels, le: '+Inf' }, value: s.count, metricName: `${name}_bucket` })
        values.push({ labels: s.labels, value: s.sum, metricName: `${name}_sum` })
        values.push({ labels: s.labels, value: s.count, metricName: `${name}_count` })
      }
      return { name, help, type: 'histogram', values, aggregator: 'sum' }
    },
    reset: () => {},
  }
  registry.registerMetric(metric as unknown as Parameters<Registry['registerMetric']>[0])
}

/**
 * Registers the call metrics on `registry` and returns the observers that feed them: hand them
 * to the caller (`callEnded`) and the tool registry (`served`). The caller's identity is never a
 * label: callers are unbounded, the tools an agent serves are not.
 */
export function callMetrics (registry: Registry): Required<CallEvents> {
  const calls = new SeriesSet(['capability', 'provider', 'outcome'])
  const served = new SeriesSet(['tool', 'outcome'])
  countOf(registry, 'mcp_mesh_calls_total', 'Calls this agent made through injected tools, after all their attempts, by capability, provider (agent name, "none" when no provider was tried) and outcome (ok or the error code).', ['capability', 'provider', 'outcome'], calls)
  histogramOf(registry, 'mcp_mesh_call_duration_seconds', 'Time from a call through an injected tool to its end, all attempts included.', calls)
  countOf(registry, 'mcp_mesh_served_calls_total', 'Calls of this agent\'s tools it served, by tool and outcome (ok or the error code).', ['tool', 'outcome'], served)
  histogramOf(registry, 'mcp_mesh_served_call_duration_seconds', 'Time this agent took to serve a call of one of its tools.', served)
  // Reused for every call: the values are read during `add` only.
  const callKey = ['', '', '']
  const servedKey = ['', '']
  return {
    callEnded (e) {
      callKey[0] = e.capability
      callKey[1] = e.agent ?? NONE
      callKey[2] = e.outcome
      calls.add(callKey, e.ms / 1000)
    },
    served (e) {
      servedKey[0] = e.tool
      servedKey[1] = e.outcome
      served.add(servedKey, e.ms / 1000)
    },
  }
}
