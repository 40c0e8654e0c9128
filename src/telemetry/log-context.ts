// The trace context a log line carries: the active span's IDs, named as OpenTelemetry's "Trace
// Context in non-OTLP Log Formats" says for JSON (top-level trace_id, span_id and trace_flags, lowercase
// hex, the flags as W3C traceflags). Only the API package: with no context manager registered (no
// tracing set up), no span is ever active and lines carry nothing.
import { isSpanContextValid, trace } from '@opentelemetry/api'

/** The trace fields of a log line written while a span is active. */
export interface TraceFields {
  trace_id: string
  span_id: string
  trace_flags: string
}

/** The active span's trace fields, or undefined when no (valid) span is active. */
export function activeTraceFields (): TraceFields | undefined {
  const span = trace.getActiveSpan()
  if (span === undefined) return undefined
  const sc = span.spanContext()
  if (!isSpanContextValid(sc)) return undefined
  return { trace_id: sc.traceId, span_id: sc.spanId, trace_flags: (sc.traceFlags & 0xff).toString(16).padStart(2, '0') }
}
