// The agent's recent spans, kept in memory so `meshctl trace` needs no tracing backend: a
// fixed-size ring of compact records (what the tree needs), written by a span processor as spans
// end. The ring's size bounds its memory; a query also skips spans older than the age limit.
import type { Context } from '@opentelemetry/api'
import type { ReadableSpan, Span, SpanProcessor } from '@opentelemetry/sdk-trace'

/** One finished span as the ring keeps it, and as `meshctl trace` gets it (JSON). */
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

const hrMs = (t: [number, number]): number => t[0] * 1e3 + t[1] / 1e6

/** A bounded ring of finished spans, and the processor that fills it. */
export class SpanRing implements SpanProcessor {
  readonly #slots: Array<SpanRecord | undefined>
  readonly #maxAgeMs: number
  readonly #now: () => number
  #next = 0
  /** Spans recorded since start (the ring holds the last `size` of them). */
  recorded = 0

  constructor (options: SpanRingOptions, now: () => number = Date.now) {
    this.#slots = new Array<SpanRecord | undefined>(options.size)
    this.#maxAgeMs = options.maxAgeMs
    this.#now = now
  }

  /** How many spans the ring holds now. */
  get size (): number { return Math.min(this.recorded, this.#slots.length) }

  onStart (_span: Span, _parent: Context): void {}

  onEnd (span: ReadableSpan): void {
    const ctx = span.spanContext()
    const start = hrMs(span.startTime)
    const record: SpanRecord = {
      traceId: ctx.traceId,
      spanId: ctx.spanId,
      name: span.name,
      kind: span.kind,
      agent: String(span.resource.attributes['service.name'] ?? ''),
      start,
      ms: hrMs(span.duration),
      status: span.status.code,
      attributes: span.attributes,
    }
    if (span.parentSpanContext !== undefined) record.parentSpanId = span.parentSpanContext.spanId
    if (span.status.message !== undefined) record.statusMessage = span.status.message
    this.#slots[this.#next] = record
    this.#next = (this.#next + 1) % this.#slots.length
    this.recorded++
  }

  /** The spans of one trace still in the ring and not older than the age limit, oldest first. */
  trace (traceId: string): SpanRecord[] {
    const since = this.#now() - this.#maxAgeMs
    const out: SpanRecord[] = []
    for (const r of this.#slots) if (r !== undefined && r.traceId === traceId && r.start + r.ms >= since) out.push(r)
    return out.sort((a, b) => a.start - b.start)
  }

  async forceFlush (): Promise<void> {}
  async shutdown (): Promise<void> { this.#slots.fill(undefined) }
}
