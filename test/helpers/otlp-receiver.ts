// A real OTLP/HTTP trace receiver for the tests: POST /v1/traces, JSON as the OTLP specification
// encodes `ExportTraceServiceRequest` (opentelemetry-proto, trace/v1/trace.proto and
// collector/trace/v1/trace_service.proto): trace and span IDs as hex strings, enums as integers,
// 64-bit integers as decimal strings or numbers, attributes as `KeyValue` with one `AnyValue` field
// set. A payload that does not decode is answered 400 and counted, as a collector would.
import { createServer } from 'node:http'
import type { AddressInfo } from 'node:net'
import { z } from 'zod'

const u64 = z.union([z.string().regex(/^\d+$/), z.number().int().nonnegative()])
const hex = (bytes: number): z.ZodString => z.string().regex(new RegExp(`^[0-9a-f]{${bytes * 2}}$`))
type AnyValue = { stringValue?: string, boolValue?: boolean, intValue?: string | number, doubleValue?: number, arrayValue?: { values?: AnyValue[] }, kvlistValue?: { values?: Array<{ key: string, value: AnyValue }> }, bytesValue?: string }
const AnyValueSchema: z.ZodType<AnyValue> = z.lazy(() => z.object({
  stringValue: z.string().optional(),
  boolValue: z.boolean().optional(),
  intValue: z.union([z.string().regex(/^-?\d+$/), z.number().int()]).optional(),
  doubleValue: z.number().optional(),
  arrayValue: z.object({ values: z.array(AnyValueSchema).optional() }).optional(),
  kvlistValue: z.object({ values: z.array(z.object({ key: z.string(), value: AnyValueSchema })).optional() }).optional(),
  bytesValue: z.string().optional(),
}).strict().refine((v) => Object.keys(v).length <= 1, 'an AnyValue sets one field'))
const KeyValues = z.array(z.object({ key: z.string(), value: AnyValueSchema }).strict())

const SpanSchema = z.object({
  traceId: hex(16),
  spanId: hex(8),
  traceState: z.string().optional(),
  parentSpanId: z.union([hex(8), z.literal('')]).optional(),
  flags: z.number().int().optional(),
  name: z.string(),
  /** SPAN_KIND_UNSPECIFIED 0, INTERNAL 1, SERVER 2, CLIENT 3, PRODUCER 4, CONSUMER 5. */
  kind: z.number().int().min(0).max(5),
  startTimeUnixNano: u64,
  endTimeUnixNano: u64,
  attributes: KeyValues.optional(),
  droppedAttributesCount: z.number().int().optional(),
  events: z.array(z.unknown()).optional(),
  droppedEventsCount: z.number().int().optional(),
  links: z.array(z.unknown()).optional(),
  droppedLinksCount: z.number().int().optional(),
  /** STATUS_CODE_UNSET 0, OK 1, ERROR 2. */
  status: z.object({ code: z.number().int().min(0).max(2).optional(), message: z.string().optional() }).strict().optional(),
}).strict()

const ExportTraceServiceRequest = z.object({
  resourceSpans: z.array(z.object({
    resource: z.object({ attributes: KeyValues.optional(), droppedAttributesCount: z.number().int().optional() }).optional(),
    scopeSpans: z.array(z.object({
      scope: z.object({ name: z.string(), version: z.string().optional(), attributes: KeyValues.optional() }).optional(),
      spans: z.array(SpanSchema),
      schemaUrl: z.string().optional(),
    })),
    schemaUrl: z.string().optional(),
  })),
}).strict()

/** One span as received, with its resource's `service.name` and plain attributes. */
export interface ReceivedSpan {
  service: string
  traceId: string
  spanId: string
  parentSpanId?: string
  name: string
  kind: number
  status: number
  attributes: Record<string, unknown>
}

const plain = (v: AnyValue): unknown => v.stringValue ?? v.boolValue ?? (v.intValue === undefined ? undefined : Number(v.intValue)) ?? v.doubleValue ?? v.arrayValue?.values?.map(plain)
const flat = (kvs: Array<{ key: string, value: AnyValue }> | undefined): Record<string, unknown> => Object.fromEntries((kvs ?? []).map((kv) => [kv.key, plain(kv.value)]))

/** A running receiver: its endpoint (for `OTEL_EXPORTER_OTLP_ENDPOINT`), what it took, what it refused. */
export interface OtlpReceiver {
  endpoint: string
  spans: ReceivedSpan[]
  refused: number
  close(): Promise<void>
}

/** Starts a receiver on a free loopback port. */
export async function startOtlpReceiver (): Promise<OtlpReceiver> {
  const r: OtlpReceiver = { endpoint: '', spans: [], refused: 0, close: async () => {} }
  const server = createServer((req, res) => {
    const chunks: Buffer[] = []
    req.on('data', (c: Buffer) => chunks.push(c))
    req.on('end', () => {
      const decoded = req.method === 'POST' && req.url === '/v1/traces' && String(req.headers['content-type']).startsWith('application/json')
        ? ExportTraceServiceRequest.safeParse((() => { try { return JSON.parse(Buffer.concat(chunks).toString('utf8')) } catch { return undefined } })())
        : undefined
      if (decoded?.success !== true) {
        r.refused++
        res.writeHead(400, { 'content-type': 'application/json' }).end(JSON.stringify({ message: decoded?.error.message ?? 'not an OTLP/HTTP JSON trace export' }))
        return
      }
      for (const rs of decoded.data.resourceSpans) {
        const service = String(flat(rs.resource?.attributes)['service.name'] ?? '')
        for (const ss of rs.scopeSpans) {
          for (const s of ss.spans) {
            r.spans.push({ service, traceId: s.traceId, spanId: s.spanId, ...(s.parentSpanId === undefined || s.parentSpanId === '' ? {} : { parentSpanId: s.parentSpanId }), name: s.name, kind: s.kind, status: s.status?.code ?? 0, attributes: flat(s.attributes) })
          }
        }
      }
      res.writeHead(200, { 'content-type': 'application/json' }).end('{}')
    })
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  r.endpoint = `http://127.0.0.1:${(server.address() as AddressInfo).port}`
  r.close = async () => { server.closeAllConnections(); await new Promise<void>((resolve) => server.close(() => resolve())) }
  return r
}
