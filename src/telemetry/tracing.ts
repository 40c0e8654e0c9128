// The node's tracing: a tracer per node (several nodes may share a process), spans kept in the
// node's ring for `meshctl trace`, exported over OTLP/HTTP (the SDK's batch processor and
// exporter) when the standard `OTEL_EXPORTER_OTLP_*` variables ask, sampled as
// `OTEL_TRACES_SAMPLER` says. Context travels through the global AsyncLocalStorage context
// manager, registered once unless the application registered its own.
import { context } from '@opentelemetry/api'
import type { Tracer, TracerProvider as ApiTracerProvider } from '@opentelemetry/api'
import { AsyncLocalStorageContextManager } from '@opentelemetry/context-async-hooks'
import { AlwaysOffSampler, AlwaysOnSampler, BatchSpanProcessor, TraceIdRatioBasedSampler } from '@opentelemetry/sdk-trace'
import type { Sampler } from '@opentelemetry/sdk-trace'
import { resourceFromAttributes } from '@opentelemetry/resources'
import type { Resource } from '@opentelemetry/resources'
import { MeshError } from '../errors.ts'
import { MeshTracer, ParentBased } from './mesh-tracer.ts'
import type { MeshSpan } from './mesh-tracer.ts'
import { SpanRing } from './span-ring.ts'
import type { SpanRingOptions } from './span-ring.ts'

let contextManager = false
/** Registers the AsyncLocalStorage context manager once per process, unless one already is. */
function ensureContextManager (): void {
  if (contextManager) return
  contextManager = true
  const manager = new AsyncLocalStorageContextManager().enable()
  if (!context.setGlobalContextManager(manager)) manager.disable() // the application's stays
}

/**
 * The sampler `OTEL_TRACES_SAMPLER` and `OTEL_TRACES_SAMPLER_ARG` name (OpenTelemetry's
 * environment specification; default `parentbased_always_on`). An unknown sampler or a ratio
 * outside 0..1 is `MESH_ERR_CONFIG_INVALID`.
 */
export function samplerFromEnv (env: NodeJS.ProcessEnv): Sampler {
  const name = (env.OTEL_TRACES_SAMPLER ?? 'parentbased_always_on').trim().toLowerCase()
  const arg = env.OTEL_TRACES_SAMPLER_ARG
  const ratio = (): number => {
    const r = arg === undefined || arg.trim() === '' ? 1 : Number(arg)
    if (!Number.isFinite(r) || r < 0 || r > 1) throw new MeshError('MESH_ERR_CONFIG_INVALID', `OTEL_TRACES_SAMPLER_ARG must be a ratio between 0 and 1, got "${arg}"`, { details: { variable: 'OTEL_TRACES_SAMPLER_ARG' } })
    return r
  }
  switch (name) {
    case 'always_on': return new AlwaysOnSampler()
    case 'always_off': return new AlwaysOffSampler()
    case 'traceidratio': return new TraceIdRatioBasedSampler(ratio())
    case 'parentbased_always_on': return new ParentBased(new AlwaysOnSampler())
    case 'parentbased_always_off': return new ParentBased(new AlwaysOffSampler())
    case 'parentbased_traceidratio': return new ParentBased(new TraceIdRatioBasedSampler(ratio()))
    default:
      throw new MeshError('MESH_ERR_CONFIG_INVALID', `OTEL_TRACES_SAMPLER "${name}" is not supported: use always_on, always_off, traceidratio, parentbased_always_on, parentbased_always_off or parentbased_traceidratio`, { details: { variable: 'OTEL_TRACES_SAMPLER' } })
  }
}

/** Whether the environment asks for OTLP export of traces. */
export function otlpRequested (env: NodeJS.ProcessEnv): boolean {
  if ((env.OTEL_TRACES_EXPORTER ?? 'otlp').split(',').map((s) => s.trim()).includes('none')) return false
  return (env.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT ?? env.OTEL_EXPORTER_OTLP_ENDPOINT ?? '') !== ''
}

/** What a node's tracing is built from. */
export interface TracingInit extends SpanRingOptions {
  /** The agent's name: `service.name` of its spans. */
  agent: string
  env?: NodeJS.ProcessEnv
  /** The application's own provider: spans go there (and not to the ring). */
  provider?: ApiTracerProvider
}

/** A node's tracer, its span ring, and the OTLP export when asked. */
export class Tracing {
  readonly tracer: Tracer
  /** The node's recent spans (undefined when the application brought its own provider). */
  readonly ring: SpanRing | undefined
  readonly #resource: Resource | undefined
  readonly #env: NodeJS.ProcessEnv
  #export: BatchSpanProcessor | undefined

  constructor (init: TracingInit) {
    ensureContextManager()
    this.#env = init.env ?? process.env
    if (init.provider !== undefined) {
      this.tracer = init.provider.getTracer('mcp-mesh-p2p')
      this.ring = undefined
      this.#resource = undefined
      return
    }
    const ring = this.ring = new SpanRing(init)
    this.#resource = resourceFromAttributes({ 'service.name': init.agent })
    this.tracer = new MeshTracer(init.agent, samplerFromEnv(this.#env), (span) => {
      ring.add(span)
      if (this.#export !== undefined) this.#exported(span)
    })
  }

  #exported (span: MeshSpan): void {
    this.#export!.onEnd(span.readable(this.#resource!))
  }

  /** Loads the OTLP/HTTP exporter when the environment asks for it (it is not loaded otherwise). */
  async start (): Promise<void> {
    if (this.ring === undefined || !otlpRequested(this.#env)) return
    const { OTLPTraceExporter } = await import('@opentelemetry/exporter-trace-otlp-http')
    // OpenTelemetry's batch variables (the SDK no longer reads them itself).
    const num = (name: string): number | undefined => {
      const v = this.#env[name]
      if (v === undefined || v.trim() === '') return undefined
      const n = Number(v)
      if (!Number.isInteger(n) || n <= 0) throw new MeshError('MESH_ERR_CONFIG_INVALID', `${name} must be a positive integer, got "${v}"`, { details: { variable: name } })
      return n
    }
    const delay = num('OTEL_BSP_SCHEDULE_DELAY')
    const queue = num('OTEL_BSP_MAX_QUEUE_SIZE')
    const batch = num('OTEL_BSP_MAX_EXPORT_BATCH_SIZE')
    const timeout = num('OTEL_BSP_EXPORT_TIMEOUT')
    this.#export = new BatchSpanProcessor({
      exporter: new OTLPTraceExporter(),
      ...(delay === undefined ? {} : { scheduledDelayMillis: delay }),
      ...(queue === undefined ? {} : { maxQueueSize: queue }),
      ...(batch === undefined ? {} : { maxExportBatchSize: batch }),
      ...(timeout === undefined ? {} : { exportTimeoutMillis: timeout }),
    })
  }

  /** Exports what is pending, then stops. */
  async stop (): Promise<void> {
    const batch = this.#export
    this.#export = undefined
    await batch?.shutdown()
    this.ring?.clear()
  }
}
