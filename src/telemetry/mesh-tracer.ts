// The node's own tracer: the OpenTelemetry API's `Tracer`, lean. A span is one small object whose
// fields the span ring copies when it ends; the OTLP exporter, when asked for, gets it as the
// SDK's `ReadableSpan`. The SDK's tracer cost a call several times more (attribute validation on
// every set, hrtime arithmetic, its own metrics, a record built at the end), and the mesh sets
// only its own, well-formed attributes. Sampling is the SDK's samplers (`OTEL_TRACES_SAMPLER`),
// parent-based ones decided here from the parent the tracer already checked.
import { randomFillSync } from 'node:crypto'
import { SamplingDecision, SpanKind, SpanStatusCode, TraceFlags, context, isSpanContextValid, trace } from '@opentelemetry/api'
import type { Attributes, AttributeValue, Context, Link, Span, SpanContext, SpanOptions, SpanStatus, TimeInput, Tracer } from '@opentelemetry/api'
import { hrTimeToMilliseconds, millisToHrTime, timeInputToHrTime } from '@opentelemetry/core'
import type { Resource } from '@opentelemetry/resources'
import type { ReadableSpan, Sampler, SamplingResult } from '@opentelemetry/sdk-trace'

const SCOPE = { name: 'mcp-mesh-p2p' }

/**
 * Random IDs, hex, cut from a pool the CSPRNG refills and hex-encodes in one go (two native calls
 * per 512 span IDs, not one per ID). An ID is a slice of the pool's hex string: it keeps that
 * string alive, as many bytes as the IDs cut from it would take themselves.
 */
const POOL = 4096
const pool = Buffer.allocUnsafe(POOL)
let hex = ''
let used = POOL
function randomId (bytes: 8 | 16): string {
  for (;;) {
    if (used + bytes > POOL) {
      randomFillSync(pool)
      hex = pool.toString('hex')
      used = 0
    }
    const at = used
    used += bytes
    for (let i = at; i < used; i++) if (pool[i] !== 0) return hex.slice(2 * at, 2 * used)
    // all zero is not a valid ID: draw again
  }
}

/**
 * Wall-clock ms at a `performance.now()` reading: the monotonic clock's offset, taken again every
 * second, so timestamps follow the system clock's adjustments as the SDK's do and durations stay
 * monotonic within a span.
 */
let offset = Date.now() - performance.now()
let offsetAt = performance.now()
function wallMs (now: number): number {
  if (now - offsetAt > 1_000) { offset = Date.now() - now; offsetAt = now }
  return now + offset
}
/** An OpenTelemetry `TimeInput` as ms since the epoch. */
const epochMs = (t: TimeInput): number => hrTimeToMilliseconds(timeInputToHrTime(t))

/** Receives each span as it ends. */
export type SpanSink = (span: MeshSpan) => void

/**
 * A recorded span of the mesh's tracer. Its public fields are what the span ring keeps and
 * `meshctl trace` shows; `readable()` is what an OTLP exporter takes. The mesh's spans carry no
 * events or links (`addEvent`, `addLink` and `recordException` are ignored).
 */
export class MeshSpan implements Span {
  readonly traceId: string
  readonly spanId: string
  readonly parent: SpanContext | undefined
  name: string
  readonly kind: SpanKind
  /** The agent that recorded it (`service.name`). */
  readonly agent: string
  /** Start, in ms since the epoch (fractional). */
  readonly start: number
  /** Duration in ms (fractional); -1 until it ends. */
  ms = -1
  /** 0 unset, 1 ok, 2 error (SpanStatusCode). */
  status: SpanStatusCode = SpanStatusCode.UNSET
  statusMessage: string | undefined = undefined
  readonly attributes: Attributes
  readonly #context: SpanContext
  readonly #t0: number
  readonly #sink: SpanSink

  constructor (sc: SpanContext, parent: SpanContext | undefined, name: string, kind: SpanKind, agent: string, attributes: Attributes, startTime: TimeInput | undefined, sink: SpanSink) {
    this.traceId = sc.traceId
    this.spanId = sc.spanId
    this.parent = parent
    this.name = name
    this.kind = kind
    this.agent = agent
    this.attributes = attributes
    this.#context = sc
    this.#t0 = performance.now()
    this.start = startTime === undefined ? wallMs(this.#t0) : epochMs(startTime)
    this.#sink = sink
  }

  spanContext (): SpanContext { return this.#context }
  isRecording (): boolean { return this.ms < 0 }

  setAttribute (key: string, value: AttributeValue | undefined): this {
    if (this.ms < 0 && value !== undefined && value !== null) this.attributes[key] = value
    return this
  }

  setAttributes (attributes: Attributes): this {
    for (const key in attributes) this.setAttribute(key, attributes[key])
    return this
  }

  setStatus (status: SpanStatus): this {
    // As the SDK: OK is final, UNSET changes nothing, only an error keeps its message.
    if (this.ms >= 0 || status.code === SpanStatusCode.UNSET || this.status === SpanStatusCode.OK) return this
    this.status = status.code
    this.statusMessage = status.code === SpanStatusCode.ERROR && typeof status.message === 'string' ? status.message : undefined
    return this
  }

  updateName (name: string): this {
    if (this.ms < 0) this.name = name
    return this
  }

  end (endTime?: TimeInput): void {
    if (this.ms >= 0) return
    this.ms = Math.max(0, endTime === undefined ? performance.now() - this.#t0 : epochMs(endTime) - this.start)
    this.#sink(this)
  }

  addEvent (): this { return this }
  addLink (_link: Link): this { return this }
  addLinks (_links: Link[]): this { return this }
  recordException (): void {}

  /** The span as the SDK's exporters take it (built when exported, not before). */
  readable (resource: Resource): ReadableSpan {
    const start = millisToHrTime(this.start)
    const end = millisToHrTime(this.start + this.ms)
    const sc = this.#context
    return {
      name: this.name,
      kind: this.kind,
      spanContext: () => sc,
      ...(this.parent === undefined ? {} : { parentSpanContext: this.parent }),
      startTime: start,
      endTime: end,
      duration: millisToHrTime(this.ms),
      status: this.statusMessage === undefined ? { code: this.status } : { code: this.status, message: this.statusMessage },
      attributes: this.attributes,
      links: [],
      events: [],
      ended: true,
      resource,
      instrumentationScope: SCOPE,
      droppedAttributesCount: 0,
      droppedEventsCount: 0,
      droppedLinksCount: 0,
    }
  }
}

/**
 * A span not recorded whose context still travels (an unsampled trace): made by this tracer, or
 * read from a call's `traceparent` (`spans.ts`). Its IDs are valid, so the call path need not
 * check them again.
 */
export class Unrecorded implements Span {
  readonly #context: SpanContext
  constructor (sc: SpanContext) { this.#context = sc }
  spanContext (): SpanContext { return this.#context }
  isRecording (): boolean { return false }
  setAttribute (): this { return this }
  setAttributes (): this { return this }
  addEvent (): this { return this }
  addLink (): this { return this }
  addLinks (): this { return this }
  setStatus (): this { return this }
  updateName (): this { return this }
  end (): void {}
  recordException (): void {}
}

/** A span of this tracer, recorded or not: its context is well formed. */
export const isMeshSpan = (span: Span | undefined): boolean => span instanceof MeshSpan || span instanceof Unrecorded

const SAMPLE: SamplingResult = { decision: SamplingDecision.RECORD_AND_SAMPLED }
const DROP: SamplingResult = { decision: SamplingDecision.NOT_RECORD }

/**
 * OpenTelemetry's parent-based sampler with its default delegates (what `parentbased_*` names): a
 * span follows its parent's sampled flag, a root asks `root`. `MeshTracer` decides it without a
 * call, from the parent it has already checked.
 */
export class ParentBased implements Sampler {
  readonly root: Sampler
  constructor (root: Sampler) { this.root = root }
  shouldSample (ctx: Context, traceId: string, name: string, kind: SpanKind, attributes: Attributes, links: Link[]): SamplingResult {
    const p = trace.getSpanContext(ctx)
    if (p === undefined || !isSpanContextValid(p)) return this.root.shouldSample(ctx, traceId, name, kind, attributes, links)
    return (p.traceFlags & TraceFlags.SAMPLED) !== 0 ? SAMPLE : DROP
  }

  toString (): string { return `ParentBased{root=${this.root.toString()}}` }
}

/**
 * The mesh's tracer for one agent: `sampler` decides (from `OTEL_TRACES_SAMPLER`), a recorded span
 * goes to `sink` when it ends, an unrecorded one is `Unrecorded` (its context still travels).
 */
export class MeshTracer implements Tracer {
  readonly #agent: string
  readonly #sampler: Sampler
  readonly #parentBased: boolean
  readonly #sink: SpanSink

  constructor (agent: string, sampler: Sampler, sink: SpanSink) {
    this.#agent = agent
    this.#sampler = sampler
    this.#parentBased = sampler instanceof ParentBased
    this.#sink = sink
  }

  startSpan (name: string, options: SpanOptions = {}, ctx: Context = context.active()): Span {
    if (options.root === true) ctx = trace.deleteSpan(ctx)
    const ps = trace.getSpan(ctx)
    const p = ps?.spanContext()
    const parent = p !== undefined && (isMeshSpan(ps) || isSpanContextValid(p)) ? p : undefined
    const traceId = parent?.traceId ?? randomId(16)
    const kind = options.kind ?? SpanKind.INTERNAL
    // Adopted, not copied: the mesh's code hands each span a fresh object.
    const attributes: Attributes = options.attributes ?? {}
    const r = parent !== undefined && this.#parentBased
      ? (parent.traceFlags & TraceFlags.SAMPLED) !== 0 ? SAMPLE : DROP
      : this.#sampler.shouldSample(ctx, traceId, name, kind, attributes, options.links ?? [])
    const traceState = r.traceState ?? parent?.traceState
    const sc: SpanContext = { traceId, spanId: randomId(8), traceFlags: r.decision === SamplingDecision.RECORD_AND_SAMPLED ? TraceFlags.SAMPLED : TraceFlags.NONE }
    if (traceState !== undefined) sc.traceState = traceState
    if (r.decision === SamplingDecision.NOT_RECORD) return new Unrecorded(sc)
    if (r.attributes !== undefined) Object.assign(attributes, r.attributes)
    return new MeshSpan(sc, parent, name, kind, this.#agent, attributes, options.startTime, this.#sink)
  }

  startActiveSpan<F extends (span: Span) => unknown>(name: string, fn: F): ReturnType<F>
  startActiveSpan<F extends (span: Span) => unknown>(name: string, options: SpanOptions, fn: F): ReturnType<F>
  startActiveSpan<F extends (span: Span) => unknown>(name: string, options: SpanOptions, ctx: Context, fn: F): ReturnType<F>
  startActiveSpan<F extends (span: Span) => unknown> (name: string, a?: SpanOptions | F, b?: Context | F, c?: F): ReturnType<F> {
    const fn = (c ?? (typeof b === 'function' ? b : a)) as (span: Span) => ReturnType<F>
    const options = typeof a === 'object' ? a : {}
    const parent = typeof b === 'object' ? b : context.active()
    const span = this.startSpan(name, options, parent)
    return context.with(trace.setSpan(parent, span), fn, undefined, span)
  }
}
