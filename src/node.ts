import type { RequestListener, Server } from 'node:http'
import { McpServer } from '@modelcontextprotocol/sdk/server/mcp.js'
import type { AuthInfo } from '@modelcontextprotocol/sdk/server/auth/types.js'
import { ListToolsRequestSchema, SetLevelRequestSchema } from '@modelcontextprotocol/sdk/types.js'
import type { CallToolResult, LoggingLevel, ServerNotification, ServerRequest } from '@modelcontextprotocol/sdk/types.js'
import type { RequestHandlerExtra } from '@modelcontextprotocol/sdk/shared/protocol.js'
import type { buildConnector } from 'undici'
import { z } from 'zod'
import { parseMeshNodeOptions } from './config.ts'
import type { MeshNodeOptions, MeshNodeOptionsInput } from './config.ts'
import { MeshError } from './errors.ts'
import { systemClock } from './clock.ts'
import type { Clock } from './clock.ts'
import { createGossipNode } from './gossip/gossip-node.ts'
import type { AdvertBody, GossipNode, GossipSeam } from './gossip/gossip-node.ts'
import { createResolver } from './topology/resolver.ts'
import type { Resolution } from './topology/resolver.ts'
import type { Member, ToolAdvert } from './topology/advert.ts'
import { ToolAdvertSchema } from './topology/advert.ts'
import { normalizeDependency } from './topology/dependency.ts'
import type { DependencySpec, ResolutionSpec } from './topology/dependency.ts'
import type { ReplicaChange } from './topology/replica.ts'
import { createEndpoint } from './server/endpoint.ts'
import type { Endpoint } from './server/endpoint.ts'
import type { CallExtra } from './server/exchange-transport.ts'
import { McpHttpClient } from './proxy/mcp-client.ts'
import type { Progress } from './proxy/mcp-client.ts'
import { createMeshTool } from './proxy/mesh-tool.ts'
import { createCaller } from './proxy/caller.ts'
import type { CallOptions, CallStats, DependencyDeclaration, MeshTool, MeshToolContext } from './proxy/mesh-tool.ts'

/** What a tool handler gets besides its arguments and dependencies. */
export interface ToolContext {
  /** Aborts when the caller cancels or disconnects, or the node stops. Pass it to your own I/O. */
  signal: AbortSignal
  /** The caller's identity, when the endpoint authenticates callers. */
  authInfo?: AuthInfo
  /** The HTTP headers of the call (empty for in-process calls). */
  headers: Record<string, string | string[] | undefined>
  /** Reports progress to the caller (MCP `notifications/progress`), when it asked for it. */
  progress(p: Progress): Promise<void>
  /** Sends a log message to the caller (MCP `notifications/message`), streamed before the result. */
  log(level: LoggingLevel, data: unknown): Promise<void>
  /**
   * The SDK's request context, for what the mesh does not wrap (sampling and elicitation
   * requests to the caller: `mcp.sendRequest`). Undefined when the call ran in process.
   */
  mcp?: RequestHandlerExtra<ServerRequest, ServerNotification>
}

/** Declares one tool: what it offers, what it takes and returns, and what it needs. */
export interface ToolSpec<I extends z.ZodRawShape, D extends Record<string, DependencyDeclaration>> {
  /** The capability it provides (default: the tool's name). */
  capability?: string
  /** Semver of the capability (default 1.0.0). */
  version?: string
  tags?: string[]
  description?: string
  /** Input fields (a zod shape); arguments are validated before the handler runs. */
  input?: I | z.ZodObject<I>
  /** Output schema: results are validated and returned as structured content. */
  output?: z.ZodRawShape | z.ZodObject
  /** Dependencies by name: each becomes a callable in the handler's second argument. */
  dependencies?: D
}

/** The injected callables, typed by each dependency's `output` schema where it has one. */
export type Injected<D extends Record<string, DependencyDeclaration>> = {
  [K in keyof D]: MeshTool<D[K] extends { output: infer S extends z.ZodType } ? z.output<S> : unknown>
}

/** A tool handler: arguments as validated, dependencies injected. */
export type ToolHandler<I extends z.ZodRawShape, D extends Record<string, DependencyDeclaration>> =
  (args: z.output<z.ZodObject<I>>, deps: Injected<D>, ctx: ToolContext) => unknown

/** Pieces tests replace: the clock, the gossip seam, and the TLS seams of both call directions. */
export interface MeshNodeSeam {
  clock?: Clock
  gossip?: GossipSeam
  /** Builds the endpoint's listening server (HTTPS with client certificates, later). */
  createServer?: (listener: RequestListener) => Server
  /** undici connector options or connector for outbound calls (TLS, later). */
  connect?: Partial<buildConnector.BuildOptions> | buildConnector.connector
}

/** An agent in the mesh: its tools, its endpoint, its view of the topology. */
export interface MeshNode {
  readonly options: MeshNodeOptions
  /** libp2p peer ID (after start). */
  readonly peerId: string
  /** The agent's MCP endpoint URL (after start). */
  readonly url: string
  /** Calls this agent made through injected tools: ok, failed by code, failovers. */
  readonly stats: CallStats
  /** Requests the endpoint is serving now. */
  readonly inflight: number
  /** The gossip member underneath (replica, stats, addresses). */
  readonly gossip: GossipNode
  /** Registers a tool (before start). Returns the node, so calls chain. */
  tool<I extends z.ZodRawShape = Record<never, never>, D extends Record<string, DependencyDeclaration> = Record<never, never>>(
    name: string, spec: ToolSpec<I, D>, handler: ToolHandler<I, D>): this
  /** A callable for a dependency, for use outside tool handlers. */
  dependency<R = unknown>(declaration: DependencyDeclaration, name?: string): MeshTool<R>
  /** One call outside a handler: resolves, calls, returns the structured result (or content). */
  call<R = unknown>(dependency: DependencyDeclaration, args?: Record<string, unknown>, options?: CallOptions): Promise<R>
  /** Members of the topology as this agent sees them now. */
  members(): Member[]
  /** Explains how a dependency resolves now (as `meshctl explain`). */
  explain(dependency: DependencySpec): Resolution
  /** Calls `listener` on every topology change; returns the unsubscribe function. */
  onTopologyChange(listener: (c: ReplicaChange) => void): () => void
  /** Starts the endpoint, joins the mesh and advertises the tools. Idempotent. */
  start(): Promise<void>
  /** Resolves after the first sync with the mesh. */
  ready(options?: { signal?: AbortSignal }): Promise<void>
  /**
   * Drains and leaves: advertises `draining`, refuses new calls (callers fail over), lets calls
   * in flight finish for up to `drainGraceMs`, then leaves the mesh and closes everything. Idempotent.
   */
  stop(): Promise<void>
}

const LOG_LEVELS: LoggingLevel[] = ['debug', 'info', 'notice', 'warning', 'error', 'critical', 'alert', 'emergency']

/**
 * Creates an agent. Options are validated here (explicit options over `MCP_MESH_*` variables);
 * a bad value throws `MESH_ERR_CONFIG_INVALID` naming it. Nothing runs until `start()`.
 */
export function createMeshNode (options: MeshNodeOptionsInput, seam: MeshNodeSeam = {}): MeshNode {
  return new Node(options, seam)
}

interface LocalTool {
  advert: ToolAdvert
  input: z.ZodObject
  output: z.ZodObject | undefined
  run: (args: unknown, ctx: ToolContext) => Promise<CallToolResult>
}

class Node implements MeshNode {
  readonly options: MeshNodeOptions
  readonly #clock: Clock
  readonly #seam: MeshNodeSeam
  readonly #mcp: McpServer
  readonly #tools = new Map<string, LocalTool>()
  readonly #dependencies: Array<{ capability: string, version?: string }> = []
  readonly #resolver = createResolver()
  readonly #client: McpHttpClient
  readonly #toolContext: MeshToolContext
  #gossip?: GossipNode
  #endpoint?: Endpoint
  #ready = false
  #settleUntil = Number.POSITIVE_INFINITY
  #started?: Promise<void>
  #stopped?: Promise<void>
  #signalHandler?: (signal: NodeJS.Signals) => void
  #stopAbort = new AbortController()
  #logLevel: LoggingLevel = 'info'

  constructor (input: MeshNodeOptionsInput, seam: MeshNodeSeam) {
    this.options = parseMeshNodeOptions(input)
    this.#seam = seam
    this.#clock = seam.clock ?? systemClock
    this.#mcp = new McpServer({ name: this.options.name, version: this.options.version }, { capabilities: { tools: {}, logging: {} } })
    // One server serves every caller, so the level is the endpoint's (the SDK keeps it per session).
    this.#mcp.server.setRequestHandler(SetLevelRequestSchema, (req) => {
      this.#logLevel = req.params.level
      return {}
    })
    this.#client = new McpHttpClient({ clientName: this.options.name, clientVersion: this.options.version, ...(seam.connect === undefined ? {} : { connect: seam.connect }) })
    this.#toolContext = createCaller({
      gossip: () => this.#gossip,
      client: this.#client,
      clock: this.#clock,
      settleUntil: () => this.#settleUntil,
      callTimeoutMs: this.options.callTimeoutMs,
      stopSignal: this.#stopAbort.signal,
      callLocal: (tool, args, signal) => this.#callLocal(tool, args, signal),
    })
  }

  get gossip (): GossipNode {
    if (this.#gossip === undefined) throw new MeshError('MESH_ERR_NOT_STARTED', 'the node has not been started: await node.start() first')
    return this.#gossip
  }

  get peerId (): string { return this.#gossip?.peerId ?? '' }
  get url (): string { return this.#endpoint?.url ?? '' }
  get stats (): CallStats { return this.#toolContext.stats }
  get inflight (): number { return this.#endpoint?.inflight ?? 0 }

  tool<I extends z.ZodRawShape, D extends Record<string, DependencyDeclaration>> (name: string, spec: ToolSpec<I, D>, handler: ToolHandler<I, D>): this {
    if (this.#started !== undefined) throw new MeshError('MESH_ERR_TOOL_INVALID', `tool ${name}: register tools before start()`)
    if (this.#tools.has(name)) throw new MeshError('MESH_ERR_TOOL_INVALID', `tool ${name} is already registered on this node`)
    const input = (spec.input instanceof z.ZodObject ? spec.input : z.object(spec.input ?? {})) as z.ZodObject
    const output = spec.output === undefined ? undefined : spec.output instanceof z.ZodObject ? spec.output : z.object(spec.output)
    const parsed = ToolAdvertSchema.safeParse({
      name,
      capability: spec.capability ?? name,
      version: spec.version ?? '1.0.0',
      tags: spec.tags ?? [],
      description: spec.description,
      // JSON Schema 2020-12, MCP's default dialect; inputs as callers write them (defaults optional).
      inputSchema: z.toJSONSchema(input, { io: 'input' }),
      outputSchema: output === undefined ? undefined : z.toJSONSchema(output),
    })
    if (!parsed.success) throw new MeshError('MESH_ERR_TOOL_INVALID', `tool ${name}: ${z.prettifyError(parsed.error)}`, { details: { issues: parsed.error.issues } })

    const deps: Record<string, MeshTool> = {}
    for (const [dep, declaration] of Object.entries(spec.dependencies ?? {})) {
      let first: ResolutionSpec
      try {
        first = normalizeDependency(declaration as DependencySpec)[0]
      } catch (err) {
        throw new MeshError('MESH_ERR_TOOL_INVALID', `tool ${name}, dependency ${dep}: ${(err as Error).message}`, { cause: err })
      }
      deps[dep] = createMeshTool(dep, declaration, this.#toolContext)
      if (!this.#dependencies.some((d) => d.capability === first.capability && d.version === first.version)) {
        this.#dependencies.push(first.version === undefined ? { capability: first.capability } : { capability: first.capability, version: first.version })
      }
    }
    const run = async (args: unknown, ctx: ToolContext): Promise<CallToolResult> =>
      toResult(await handler(args as z.output<z.ZodObject<I>>, deps as Injected<D>, ctx))
    this.#tools.set(name, { advert: parsed.data, input, output, run })
    if (this.#tools.size === 1) this.#listToolsFromAdverts()

    this.#mcp.registerTool(name, {
      description: spec.description,
      inputSchema: input,
      ...(output === undefined ? {} : { outputSchema: output }),
    }, async (args, extra) => await run(args, this.#context(extra)))
    return this
  }

  /** The handler's context from the SDK's request context (or the fast path's, shaped alike). */
  #context (extra: CallExtra): ToolContext {
    return {
      signal: extra.signal,
      ...(extra.authInfo === undefined ? {} : { authInfo: extra.authInfo }),
      headers: extra.requestInfo?.headers ?? {},
      progress: async (p) => {
        const token = extra._meta?.progressToken
        if (token === undefined) return
        await extra.sendNotification({ method: 'notifications/progress', params: { ...p, progressToken: token } })
      },
      log: async (level, data) => {
        // Only the call's own stream can carry it (there is no GET stream), so it is sent as
        // related to the call, after the level check (the SDK's sendLoggingMessage is neither).
        if (LOG_LEVELS.indexOf(level) < LOG_LEVELS.indexOf(this.#logLevel)) return
        await extra.sendNotification({ method: 'notifications/message', params: { level, data, logger: this.options.name } })
      },
      mcp: extra,
    }
  }

  /**
   * `tools/call` on the endpoint's fast path, with the SDK's rules: arguments validated first
   * (a failure is an `isError` result naming the fields), thrown errors become `isError` results,
   * structured content is checked against the output schema.
   */
  #fastCall (name: string, args: unknown, extra: CallExtra): Promise<CallToolResult> | undefined {
    const tool = this.#tools.get(name)
    if (tool === undefined) return undefined // unknown tools: the SDK answers
    return (async () => {
      const parsed = await parseMaybeAsync(tool.input, args ?? {})
      if (!parsed.success) return toolError(`Input validation error: Invalid arguments for tool ${name}: ${z.prettifyError(parsed.error)}`)
      let result: CallToolResult
      try {
        result = await tool.run(parsed.data, this.#context(extra))
      } catch (err) {
        return toolError(err instanceof Error ? err.message : String(err))
      }
      if (tool.output === undefined || result.isError === true) return result
      if (result.structuredContent === undefined) return toolError(`Output validation error: Tool ${name} has an output schema but no structured content was provided`)
      const checked = await parseMaybeAsync(tool.output, result.structuredContent)
      if (!checked.success) return toolError(`Output validation error: Invalid structured content for tool ${name}: ${z.prettifyError(checked.error)}`)
      return result
    })()
  }

  /**
   * tools/list serves the schemas the advert carries (JSON Schema 2020-12, MCP's default
   * dialect), so MCP clients and mesh peers see the same thing; the SDK would emit draft-07.
   */
  #listToolsFromAdverts (): void {
    this.#mcp.server.setRequestHandler(ListToolsRequestSchema, () => ({
      tools: [...this.#tools.values()].map(({ advert: a }) => ({
        name: a.name,
        ...(a.description === undefined ? {} : { description: a.description }),
        inputSchema: a.inputSchema as { type: 'object' },
        ...(a.outputSchema === undefined ? {} : { outputSchema: a.outputSchema as { type: 'object' } }),
      })),
    }))
  }

  dependency<R = unknown> (declaration: DependencyDeclaration, name?: string): MeshTool<R> {
    const specs = normalizeDependency(declaration as DependencySpec)
    return createMeshTool<R>(name ?? specs[0].capability, declaration, this.#toolContext)
  }

  async call<R = unknown> (dependency: DependencyDeclaration, args?: Record<string, unknown>, options?: CallOptions): Promise<R> {
    return await this.dependency<R>(dependency)(args, options)
  }

  members (): Member[] {
    return [...this.gossip.replica.members()]
  }

  explain (dependency: DependencySpec): Resolution {
    return this.#resolver.resolve(this.members(), dependency)
  }

  onTopologyChange (listener: (c: ReplicaChange) => void): () => void {
    return this.gossip.replica.onChange(listener)
  }

  start (): Promise<void> {
    this.#started ??= this.#start()
    return this.#started
  }

  async #start (): Promise<void> {
    const o = this.options
    this.#endpoint = createEndpoint({
      mcp: this.#mcp,
      host: o.http.host,
      port: o.http.port,
      ...(o.http.announceHost === undefined ? {} : { announceHost: o.http.announceHost }),
      maxBodyBytes: o.http.maxBodyBytes,
      ...(allowedHosts(o) === undefined ? {} : { allowedHosts: allowedHosts(o) }),
      maxConcurrentCalls: o.http.maxConcurrentCalls,
      isReady: () => this.#ready,
      ...(this.#seam.createServer === undefined ? {} : { createServer: this.#seam.createServer }),
      fastCall: (name, args, extra) => this.#fastCall(name, args, extra),
    })
    await this.#endpoint.start()
    const { version: _v, http: _h, settleMs: _s, callTimeoutMs: _c, drainGraceMs: _d, handleSignals: _hs, ...gossipOptions } = o
    this.#gossip = createGossipNode({ ...gossipOptions, advert: this.#advertBody('alive') }, { ...this.#seam.gossip, ...(this.#seam.clock === undefined ? {} : { clock: this.#seam.clock }) })
    try {
      await this.#gossip.start({ signal: this.#stopAbort.signal })
    } catch (err) {
      await this.#endpoint.stop()
      throw err
    }
    this.#settleUntil = this.#clock.now() + o.settleMs
    this.#gossip.ready({ signal: this.#stopAbort.signal }).then(() => { this.#ready = true }, () => {})
    if (o.handleSignals) {
      this.#signalHandler = (signal) => {
        this.#removeSignalHandlers()
        // Drain, then end the way the signal would have, so exit codes and supervisors see it.
        this.stop().finally(() => process.kill(process.pid, signal))
      }
      process.once('SIGTERM', this.#signalHandler)
      process.once('SIGINT', this.#signalHandler)
    }
  }

  async ready (options: { signal?: AbortSignal } = {}): Promise<void> {
    await this.gossip.ready(options)
  }

  stop (): Promise<void> {
    this.#stopped ??= this.#stop()
    return this.#stopped
  }

  async #stop (): Promise<void> {
    this.#removeSignalHandlers()
    await this.#started?.catch(() => {})
    const gossip = this.#gossip
    const endpoint = this.#endpoint
    if (gossip !== undefined && endpoint !== undefined) {
      // Tell the mesh first, so callers stop choosing us while calls in flight finish.
      await gossip.updateAdvert(this.#advertBody('draining')).catch(() => {})
      await endpoint.drain(this.options.drainGraceMs)
    }
    this.#stopAbort.abort(new MeshError('MESH_ERR_ABORTED', 'the node is stopping'))
    await endpoint?.stop()
    await this.#client.close()
    await gossip?.stop()
  }

  #removeSignalHandlers (): void {
    if (this.#signalHandler === undefined) return
    process.off('SIGTERM', this.#signalHandler)
    process.off('SIGINT', this.#signalHandler)
    this.#signalHandler = undefined
  }

  #advertBody (status: 'alive' | 'draining'): AdvertBody {
    return {
      tools: [...this.#tools.values()].map((t) => t.advert),
      dependencies: this.#dependencies,
      endpoint: this.#endpoint?.url,
      status,
    }
  }

  /** A dependency this agent provides itself: run in process, with the same validation. */
  async #callLocal (name: string, args: unknown, signal: AbortSignal): Promise<CallToolResult> {
    const tool = this.#tools.get(name)
    if (tool === undefined) throw new MeshError('MESH_ERR_CALL_NO_PROVIDER', `tool ${name} is not registered on this node`)
    const parsed = await parseMaybeAsync(tool.input, args ?? {})
    if (!parsed.success) return toolError(`Input validation error: Invalid arguments for tool ${name}: ${z.prettifyError(parsed.error)}`)
    try {
      return await tool.run(parsed.data, { signal, headers: {}, progress: async () => {}, log: async () => {} })
    } catch (err) {
      return toolError(err instanceof Error ? err.message : String(err))
    }
  }

}

/** What a handler returned, as an MCP tool result. Objects also go out as structured content. */
function toResult (value: unknown): CallToolResult {
  if (isCallToolResult(value)) return value
  if (typeof value === 'string') return { content: [{ type: 'text', text: value }] }
  const text = JSON.stringify(value) ?? 'null'
  const structured = typeof value === 'object' && value !== null && !Array.isArray(value)
  return structured
    ? { content: [{ type: 'text', text }], structuredContent: value as Record<string, unknown> }
    : { content: [{ type: 'text', text }] }
}

function toolError (text: string): CallToolResult {
  return { isError: true, content: [{ type: 'text', text }] }
}

/** Synchronous parse (the common case, cheaper), async only for schemas with async refinements. */
async function parseMaybeAsync (schema: z.ZodType, value: unknown): Promise<z.ZodSafeParseResult<unknown>> {
  try {
    return schema.safeParse(value)
  } catch (err) {
    if (err instanceof z.core.$ZodAsyncError) return await schema.safeParseAsync(value)
    throw err
  }
}

/** Loopback-bound endpoints answer only to loopback host names unless told otherwise. */
function allowedHosts (o: MeshNodeOptions): string[] | undefined {
  if (o.http.allowedHosts !== undefined) return o.http.allowedHosts.map((h) => h.toLowerCase())
  const loopback = ['127.0.0.1', 'localhost', '::1', '[::1]']
  if (!loopback.includes(o.http.host) && !o.http.host.startsWith('127.')) return undefined
  const names = ['localhost', '127.0.0.1', '[::1]', o.http.host.toLowerCase()]
  if (o.http.announceHost !== undefined) names.push(o.http.announceHost.toLowerCase())
  return names
}

function isCallToolResult (v: unknown): v is CallToolResult {
  return typeof v === 'object' && v !== null && Array.isArray((v as { content?: unknown }).content) &&
    (v as { content: unknown[] }).content.every((c) => typeof c === 'object' && c !== null && typeof (c as { type?: unknown }).type === 'string')
}
