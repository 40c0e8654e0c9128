// The spans of the call path, written against the OpenTelemetry API alone (the node wires the
// SDK, or the application brings its own provider): a server span per call served, a span per
// call through a dependency, and a client span per attempt (retries, failovers and hedges show
// as attempts). Attribute names follow OpenTelemetry's semantic conventions for MCP and RPC
// (`mcp.method.name`, `gen_ai.tool.name`, `server.address`, `error.type`) plus `mesh.*` ones.
import { ROOT_CONTEXT, SpanKind, SpanStatusCode, TraceFlags, context, trace } from '@opentelemetry/api'
import type { Attributes, Context, Span, TextMapGetter, Tracer } from '@opentelemetry/api'
import { W3CTraceContextPropagator } from '@opentelemetry/core'
import type { CallToolResult } from '@modelcontextprotocol/sdk/types.js'
import { MESH_ERROR_META_KEY } from '../errors.ts'

const w3c = new W3CTraceContextPropagator()

/** Reads `traceparent` and `tracestate` from HTTP headers, or from MCP `_meta` for clients that cannot set headers. */
const carrierGetter: TextMapGetter<{ headers: Record<string, string | string[] | undefined>, meta?: Record<string, unknown> }> = {
  keys: () => ['traceparent', 'tracestate'],
  get: (c, key) => {
    const h = c.headers[key]
    if (h !== undefined) return h
    const m = c.meta?.[key]
    return typeof m === 'string' ? m : undefined
  },
}

/** The trace context a call arrived with (headers first, then `_meta`), as the parent of its server span. */
export function inboundContext (headers: Record<string, string | string[] | undefined>, meta?: Record<string, unknown>): Context {
  return w3c.extract(ROOT_CONTEXT, { headers, ...(meta === undefined ? {} : { meta }) }, carrierGetter)
}

/** Writes `span`'s context into outbound headers (`traceparent`, and `tracestate` when set). */
export function injectInto (headers: Record<string, string>, span: Span): void {
  w3c.inject(trace.setSpan(ROOT_CONTEXT, span), headers, { set: (c, k, v) => { c[k] = v } })
}

/** Starts the server span of a call of `tool` this agent serves, under `parent`. */
export function startServerSpan (tracer: Tracer, tool: string, capability: string, caller: string | undefined, parent: Context): Span {
  const span = child(tracer, `tools/call ${tool}`, SERVER, parent)
  // Attributes only for spans that are recorded (our samplers do not read them): an unsampled
  // call pays for no attribute objects.
  if (!span.isRecording()) return span
  span.setAttributes({ 'mcp.method.name': 'tools/call', 'gen_ai.tool.name': tool, 'gen_ai.operation.name': 'execute_tool', 'mesh.capability': capability })
  if (caller !== undefined) span.setAttribute('mesh.caller.spiffe_id', caller)
  return span
}

/**
 * A span under `parent`; under an unsampled parent, the parent's own context instead of a new
 * span (nothing records it, and parent-based sampling makes every span under it unsampled too),
 * so an unsampled trace costs the call almost nothing and still carries its trace ID on.
 */
function child (tracer: Tracer, name: string, options: typeof SERVER, parent: Context): Span {
  const p = trace.getSpanContext(parent)
  if (p !== undefined && (p.traceFlags & TraceFlags.SAMPLED) === 0) return trace.wrapSpanContext(p)
  return tracer.startSpan(name, options, parent)
}

const SERVER = { kind: SpanKind.SERVER }
const INTERNAL = { kind: SpanKind.INTERNAL }
const CLIENT = { kind: SpanKind.CLIENT }

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
export function startCallSpan (tracer: Tracer, dependency: string, capability: string, headers?: Record<string, string>): { span: Span, ctx: Context } {
  const active = context.active()
  const parent = headers?.traceparent !== undefined && trace.getSpan(active) === undefined ? inboundContext(headers) : active
  const span = child(tracer, `call ${dependency}`, INTERNAL, parent)
  if (span.isRecording()) span.setAttributes({ 'mesh.dependency': dependency, 'mesh.capability': capability })
  return { span, ctx: trace.setSpan(parent, span) }
}

/** What an attempt span says about its provider. */
export interface AttemptTarget {
  agent: string
  peerId: string
  tool: string
  endpoint?: string
  spiffeId?: string
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

/** Starts the span of attempt `n` (1-based) of a call, to `target`, under the call's span. */
export function startAttemptSpan (tracer: Tracer, parent: Context, target: AttemptTarget, n: number, local: boolean): { span: Span, ctx: Context } {
  const span = child(tracer, `tools/call ${target.tool}`, local ? INTERNAL : CLIENT, parent)
  const ctx = trace.setSpan(parent, span)
  if (!span.isRecording()) return { span, ctx }
  const attributes: Attributes = {
    'mcp.method.name': 'tools/call',
    'gen_ai.tool.name': target.tool,
    'mesh.attempt': n,
    'mesh.peer.agent': target.agent,
    'mesh.peer.id': target.peerId,
  }
  if (target.spiffeId !== undefined) attributes['mesh.peer.spiffe_id'] = target.spiffeId
  const server = target.endpoint === undefined ? undefined : serverOf(target.endpoint)
  if (server !== undefined) { attributes['server.address'] = server[0]; attributes['server.port'] = server[1] }
  span.setAttributes(attributes)
  return { span, ctx }
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
