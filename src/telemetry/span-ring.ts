// The agent's recent spans, kept in memory so `meshctl trace` needs no tracing backend: a
// fixed-size ring, filled as spans end. The ring's size bounds its memory; a query also skips
// spans older than the age limit, and builds the records it returns.
import type { Attributes } from '@opentelemetry/api'
import type { MeshSpan } from './mesh-tracer.ts'

/** One finished span as a query of the ring returns it, and as `meshctl trace` gets it (JSON). */
export interface SpanRecord {
  traceId: string
  spanId: string
  parentSpanId?: string
  name: string
  /** OpenTelemetry's SpanKind: 0 internal, 1 server, 2 client. */
  kind: number
  /** The agent that recorded it (`service.name`). */
  agent: string
  /** Start, in ms since the epoch (fractional). */
  start: number
  /** Duration in ms (fractional). */
  ms: number
  /** 0 unset, 1 ok, 2 error (OpenTelemetry's SpanStatusCode). */
  status: number
  statusMessage?: string
  attributes: Record<string, unknown>
}

/** What the ring holds at most, and how long a span stays findable. */
export interface SpanRingOptions {
  /** Spans kept; the oldest is overwritten (default 4,096). */
  size: number
  /** A query ignores spans that ended longer ago than this, in ms (default 15 minutes). */
  maxAgeMs: number
}

/**
 * A bounded ring of finished spans, in columns: a span's fields are copied into preallocated
 * arrays when it ends, so the span object itself dies young and what the ring holds is its
 * attribute object and strings. Spans held in the ring outlive the young generation: every
 * object they keep is copied by each scavenge until it is promoted, which cost a traced call more
 * than making its spans did.
 */
export class SpanRing {
  readonly #size: number
  readonly #traceIds: Array<string | undefined>
  readonly #spanIds: string[]
  readonly #parents: Array<string | undefined>
  readonly #names: string[]
  readonly #agents: string[]
  readonly #kinds: Uint8Array
  readonly #statuses: Uint8Array
  readonly #messages: Array<string | undefined>
  readonly #starts: Float64Array
  readonly #durations: Float64Array
  readonly #attributes: Attributes[]
  readonly #maxAgeMs: number
  readonly #now: () => number
  #next = 0
  /** Spans recorded since start (the ring holds the last `size` of them). */
  recorded = 0

  constructor (options: SpanRingOptions, now: () => number = Date.now) {
    const n = this.#size = options.size
    this.#traceIds = new Array<string | undefined>(n).fill(undefined)
    this.#spanIds = new Array<string>(n).fill('')
    this.#parents = new Array<string | undefined>(n).fill(undefined)
    this.#names = new Array<string>(n).fill('')
    this.#agents = new Array<string>(n).fill('')
    this.#kinds = new Uint8Array(n)
    this.#statuses = new Uint8Array(n)
    this.#messages = new Array<string | undefined>(n).fill(undefined)
    this.#starts = new Float64Array(n)
    this.#durations = new Float64Array(n)
    this.#attributes = new Array<Attributes>(n).fill(NONE)
    this.#maxAgeMs = options.maxAgeMs
    this.#now = now
  }

  /** How many spans the ring holds now. */
  get size (): number { return Math.min(this.recorded, this.#size) }

  /** Keeps a span that ended, in place of the oldest. */
  add (span: MeshSpan): void {
    const i = this.#next
    this.#traceIds[i] = span.traceId
    this.#spanIds[i] = span.spanId
    this.#parents[i] = span.parent?.spanId
    this.#names[i] = span.name
    this.#agents[i] = span.agent
    this.#kinds[i] = span.kind
    this.#statuses[i] = span.status
    this.#messages[i] = span.statusMessage
    this.#starts[i] = span.start
    this.#durations[i] = span.ms
    this.#attributes[i] = span.attributes
    this.#next = i + 1 === this.#size ? 0 : i + 1
    this.recorded++
  }

  /** The spans of one trace still in the ring and not older than the age limit, oldest first. */
  trace (traceId: string): SpanRecord[] {
    const since = this.#now() - this.#maxAgeMs
    const out: SpanRecord[] = []
    for (let i = 0; i < this.#size; i++) {
      if (this.#traceIds[i] !== traceId || this.#starts[i] + this.#durations[i] < since) continue
      const r: SpanRecord = { traceId, spanId: this.#spanIds[i], name: this.#names[i], kind: this.#kinds[i], agent: this.#agents[i], start: this.#starts[i], ms: this.#durations[i], status: this.#statuses[i], attributes: { ...this.#attributes[i] } }
      const parent = this.#parents[i]
      if (parent !== undefined) r.parentSpanId = parent
      const message = this.#messages[i]
      if (message !== undefined) r.statusMessage = message
      out.push(r)
    }
    return out.sort((a, b) => a.start - b.start)
  }

  /** Forgets every span. */
  clear (): void {
    this.#traceIds.fill(undefined)
    this.#parents.fill(undefined)
    this.#messages.fill(undefined)
    this.#attributes.fill(NONE)
  }
}

const NONE: Attributes = Object.freeze({})
