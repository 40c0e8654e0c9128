// `mesh/spans`: how `meshctl trace` asks an agent for the spans of one trace it keeps. A JSON-RPC
// method of ours on the agent's MCP endpoint, so it travels with the endpoint's mutual TLS.
import { z } from 'zod'
import type { SpanRecord } from './span-ring.ts'

/** The method's name. */
export const SPANS_METHOD = 'mesh/spans'

/** A W3C trace ID: 32 lowercase hex digits, not all zero. */
export const TraceIdSchema = z.string().regex(/^(?!0{32})[0-9a-f]{32}$/, 'a W3C trace ID: 32 lowercase hex digits')

/** The request, as the SDK's server validates it. */
export const SpansRequestSchema = z.object({
  method: z.literal(SPANS_METHOD),
  params: z.object({ traceId: TraceIdSchema }),
})

/** The answer: who answered, and its spans of the trace (oldest first). */
export interface SpansResult extends Record<string, unknown> {
  agent: string
  spans: SpanRecord[]
}
