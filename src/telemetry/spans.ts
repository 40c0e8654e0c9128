// The spans of the call path, written against the OpenTelemetry API alone (the node brings its
// own tracer, or the application its own provider): a server span per call served, a span per
// call through a dependency, and a client span per attempt (retries, failovers and hedges show
// as attempts). Attribute names follow OpenTelemetry's semantic conventions for MCP and RPC
// (`mcp.method.name`, `gen_ai.tool.name`, `server.address`, `error.type`) plus `mesh.*` ones.
import { ROOT_CONTEXT, SpanKind, SpanStatusCode, TraceFlags, context, isSpanContextValid, trace } from '@opentelemetry/api'
import type { Attributes, Context, Span, SpanContext, Tracer } from '@opentelemetry/api'
import { TraceState, parseTraceParent } from '@opentelemetry/core'
import type { CallToolResult } from '@modelcontextprotocol/sdk/types.js'
import { MESH_ERROR_META_KEY } from '../errors.ts'
import { Unrecorded, isMeshSpan } from './mesh-tracer.ts'

type Headers = Record<string, string | string[] | undefined>

/**
 * A context as the API specifies it (immutable; a value set or deleted makes a new one), kept as
 * a chain of entries: making one is a single small object, where the API's own copies a map and
 * makes three closures. The call path makes two or three a call.
 */
class ChainContext implements Context {
  readonly #parent: Context | undefined
  readonly #key: symbol | undefined
  readonly #value: unknown

  constructor (parent: Context | undefined, key: symbol | undefined, value: unknown) {
    this.#parent = parent
    this.#key = key
    this.#value = value
  }

  getValue (key: symbol): unknown {
    return key === this.#key ? this.#value : this.#parent?.getValue(key)
  }

  setValue (key: symbol, value: unknown): Context {
    return new ChainContext(this, key, value)
  }

  deleteValue (key: symbol): Context {
    return new ChainContext(this, key, undefined)
  }
}
/** The root of the contexts the call path makes: empty, as the API's `ROOT_CONTEXT`. */
const ROOT: Context = new ChainContext(undefined, undefined, undefined)
/** `ctx`, or our root in place of the API's (what is set on it then costs less). */
const rooted = (ctx: Context): Context => ctx === ROOT_CONTEXT ? ROOT : ctx

/** A trace context field from HTTP headers first, then from MCP `_meta` (clients that cannot set headers). */
function field (headers: Headers, meta: Record<string, unknown> | undefined, key: string): string | string[] | undefined {
  const h = headers[key]
  if (h !== undefined) return h
  const m = meta?.[key]
  return typeof m === 'string' ? m : undefined
}

/**
 * The trace context a call arrived with (headers first, then `_meta`), as the parent of its
 * server span: W3C Trace Context as OpenTelemetry's propagator reads it, without its carrier.
 */
export function inboundContext (headers: Headers, meta?: Record<string, unknown>): Context {
  const tp = field(headers, meta, 'traceparent')
  const first = Array.isArray(tp) ? tp[0] : tp
  if (typeof first !== 'string' || first === '') return ROOT
  const sc = parseVersion00(first) ?? parseTraceParent(first)
  if (sc === null) return ROOT
  sc.isRemote = true
  const ts = field(headers, meta, 'tracestate')
  if (ts !== undefined && ts !== '') sc.traceState = new TraceState(Array.isArray(ts) ? ts.join(',') : ts)
  return trace.setSpan(ROOT, new Unrecorded(sc))
}

/** Lowercase hex digits (char codes), and their value. */
const isHex = (c: number): boolean => (c >= 48 && c <= 57) || (c >= 97 && c <= 102)
const hexValue = (c: number): number => c <= 57 ? c - 48 : c - 87
/**
 * The common `traceparent`, checked without a regular expression: version `00`, exactly 55
 * characters, lowercase hex, IDs not all zero. Anything else (other versions, spaces) is left to
 * OpenTelemetry's parser.
 */
function parseVersion00 (tp: string): SpanContext | null {
  if (tp.length !== 55 || tp.charCodeAt(0) !== 48 || tp.charCodeAt(1) !== 48 || tp.charCodeAt(2) !== 45 || tp.charCodeAt(35) !== 45 || tp.charCodeAt(52) !== 45) return null
  let traceZero = true
  let spanZero = true
  for (let i = 3; i < 55; i++) {
    if (i === 35 || i === 52) continue
    const c = tp.charCodeAt(i)
    if (!isHex(c)) return null
    if (c !== 48) { if (i < 35) traceZero = false; else if (i < 52) spanZero = false }
  }
  if (traceZero || spanZero) return null
  return { traceId: tp.slice(3, 35), spanId: tp.slice(36, 52), traceFlags: hexValue(tp.charCodeAt(53)) * 16 + hexValue(tp.charCodeAt(54)) }
}

/** Writes `span`'s context into outbound headers (`traceparent`, and `tracestate` when set), as the W3C propagator would. */
export function injectInto (headers: Record<string, string>, span: Span): void {
  const sc = span.spanContext()
  // The mesh's own spans have well-formed IDs; an application's tracer's are checked.
  if (!isMeshSpan(span) && !isSpanContextValid(sc)) return
  headers.traceparent = `00-${sc.traceId}-${sc.spanId}-${(sc.traceFlags & 0xff).toString(16).padStart(2, '0')}`
  if (sc.traceState !== undefined) {
    const ts = sc.traceState.serialize()
    if (ts !== '') headers.tracestate = ts
  }
}

/** A span and the context it is active in. */
export interface Scoped {
  span: Span
  ctx: Context
}

/** A span under `parent` with `attributes` (the tracer keeps the object), and its context. */
function child (tracer: Tracer, name: string, kind: SpanKind, parent: Context, attributes: Attributes): Scoped {
  const started = tracer.startSpan(name, { kind, attributes }, parent)
  return { span: started, ctx: trace.setSpan(rooted(parent), started) }
}

/**
 * The span of `parent` when it is unsampled (and not recorded): the call path then uses it in
 * place of a new span (nothing would record one, and parent-based sampling makes every span under
 * it unsampled too), so an unsampled trace costs a call almost nothing (no span, no context, no
 * attribute object) and still carries its trace ID on.
 */
function unsampled (parent: Context): Span | undefined {
  const span = trace.getSpan(parent)
  return span !== undefined && (span.spanContext().traceFlags & TraceFlags.SAMPLED) === 0 && !span.isRecording() ? span : undefined
}

/** Span names by tool or dependency, made once: the ring keeps one string for all their spans. */
const toolCall = new Map<string, string>()
const depCall = new Map<string, string>()
function spanName (names: Map<string, string>, prefix: string, name: string): string {
  let n = names.get(name)
  if (n === undefined) {
    if (names.size > 10_000) names.clear()
    names.set(name, n = prefix + name)
  }
  return n
}

/** Starts the server span of a call of `tool` this agent serves, under `parent`; `capabilityOf` is asked only for a recorded span. */
export function startServerSpan (tracer: Tracer, tool: string, capabilityOf: (tool: string) => string, caller: string | undefined, parent: Context): Scoped {
  const skip = unsampled(parent)
  if (skip !== undefined) return { span: skip, ctx: parent }
  const attributes: Attributes = { 'mcp.method.name': 'tools/call', 'gen_ai.tool.name': tool, 'gen_ai.operation.name': 'execute_tool', 'mesh.capability': capabilityOf(tool) }
  if (caller !== undefined) attributes['mesh.caller.spiffe_id'] = caller
  return child(tracer, spanName(toolCall, 'tools/call ', tool), SpanKind.SERVER, parent, attributes)
}

/** Ends a server span with the call's result: an `isError` result sets the error status and `error.type`. */
export function endServerSpan (span: Span, r: CallToolResult): void {
  if (r.isError === true) {
    const meta = r._meta?.[MESH_ERROR_META_KEY] as { code?: unknown } | undefined
    const code = typeof meta?.code === 'string' ? meta.code : 'MESH_ERR_CALL_TOOL_ERROR'
    span.setAttribute('error.type', code)
    const text = r.content[0]?.type === 'text' ? r.content[0].text : undefined
    span.setStatus({ code: SpanStatusCode.ERROR, ...(text === undefined ? {} : { message: text.slice(0, 256) }) })
  }
  span.end()
}

/**
 * Starts the span of one call through a dependency, under the active context (the handler's
 * server span), or outside any span under the `traceparent` the call's own headers carry.
 */
export function startCallSpan (tracer: Tracer, dependency: string, capability: string, headers?: Record<string, string>): Scoped {
  const active = rooted(context.active())
  const parent = headers?.traceparent !== undefined && trace.getSpan(active) === undefined ? inboundContext(headers) : active
  const skip = unsampled(parent)
  if (skip !== undefined) return { span: skip, ctx: parent }
  return child(tracer, spanName(depCall, 'call ', dependency), SpanKind.INTERNAL, parent, { 'mesh.dependency': dependency, 'mesh.capability': capability })
}

/** What an attempt span says about its provider (a resolver's candidate has this shape). */
export interface AttemptTarget {
  agent: string
  peerId: string
  tool: { name: string }
  endpoint?: string
  identity?: { spiffeId: string }
}

const hostPort = new Map<string, [string, number]>()
/** `server.address` and `server.port` of an endpoint URL (parsed once per URL). */
function serverOf (endpoint: string): [string, number] | undefined {
  let hp = hostPort.get(endpoint)
  if (hp === undefined) {
    try {
      const u = new URL(endpoint)
      hp = [u.hostname.replace(/^\[|\]$/g, ''), Number(u.port === '' ? (u.protocol === 'https:' ? 443 : 80) : u.port)]
    } catch {
      return undefined
    }
    if (hostPort.size > 10_000) hostPort.clear()
    hostPort.set(endpoint, hp)
  }
  return hp
}

/**
 * Starts the span of attempt `n` (1-based) of a call, to `target`, under the call's context
 * (`parent`); under an unsampled call, the call's own span. `attemptContext` makes its context
 * when the attempt runs in process.
 */
export function startAttemptSpan (tracer: Tracer, parent: Context, target: AttemptTarget, n: number, local: boolean): Span {
  const skip = unsampled(parent)
  if (skip !== undefined) return skip
  const tool = target.tool.name
  const attributes: Attributes = { 'mcp.method.name': 'tools/call', 'gen_ai.tool.name': tool, 'mesh.attempt': n, 'mesh.peer.agent': target.agent, 'mesh.peer.id': target.peerId }
  if (target.identity !== undefined) attributes['mesh.peer.spiffe_id'] = target.identity.spiffeId
  const server = target.endpoint === undefined ? undefined : serverOf(target.endpoint)
  if (server !== undefined) {
    attributes['server.address'] = server[0]
    attributes['server.port'] = server[1]
  }
  return tracer.startSpan(spanName(toolCall, 'tools/call ', tool), { kind: local ? SpanKind.INTERNAL : SpanKind.CLIENT, attributes }, parent)
}

/** The context an attempt's span is active in, under the call's context. */
export function attemptContext (parent: Context, span: Span): Context {
  return trace.getSpan(parent) === span ? parent : trace.setSpan(rooted(parent), span)
}

/** Ends a span with a failure: its code as `error.type`, its message as the status. */
export function failSpan (span: Span, code: string, message: string): void {
  span.setAttribute('error.type', code)
  span.setStatus({ code: SpanStatusCode.ERROR, message: message.slice(0, 256) })
  span.end()
}

/** Runs `fn` with `ctx` active (nested spans and logs see it). */
export function withContext<T> (ctx: Context, fn: () => T): T {
  return context.with(ctx, fn)
}

export { SpanKind, SpanStatusCode }
