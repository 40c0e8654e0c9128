import type { IncomingMessage, RequestListener, Server } from 'node:http'
import { McpServer } from '@modelcontextprotocol/sdk/server/mcp.js'
import type { AuthInfo } from '@modelcontextprotocol/sdk/server/auth/types.js'
import type { z } from 'zod'
import { parseMeshNodeOptions } from './config.ts'
import type { MeshNodeOptions, MeshNodeOptionsInput } from './config.ts'
import { MeshError } from './errors.ts'
import { systemClock } from './clock.ts'
import type { Clock } from './clock.ts'
import { createGossipNode } from './gossip/gossip-node.ts'
import type { AdvertBody, GossipNode, GossipSeam } from './gossip/gossip-node.ts'
import { createResolver } from './topology/resolver.ts'
import type { Resolution } from './topology/resolver.ts'
import type { Advert, Member } from './topology/advert.ts'
import { normalizeDependency } from './topology/dependency.ts'
import type { DependencySpec, ResolutionSpec } from './topology/dependency.ts'
import type { ReplicaChange } from './topology/replica.ts'
import { createEndpoint } from './server/endpoint.ts'
import type { Endpoint, EndpointStats } from './server/endpoint.ts'
import { createToolRegistry } from './server/tools.ts'
import { headerFilter } from './proxy/headers.ts'
import type { ToolDefinition, ToolRegistry } from './server/tools.ts'
import type { ToolContext } from './server/tool-context.ts'
import { McpHttpClient } from './proxy/mcp-client.ts'
import type { ConnectOptions } from './proxy/mcp-client.ts'
import { createMeshTool } from './proxy/mesh-tool.ts'
import { secureContextOf, tlsServer } from './identity/tls.ts'
import { advertIdentity } from './identity/advert-check.ts'
import type { TlsServer } from './identity/tls.ts'
import type { Identity } from './identity/provider.ts'
import { MemberIdentity } from './identity/member.ts'
import { allowList } from './identity/authorize.ts'
import type { SecureContext } from 'node:tls'
import { logger } from './telemetry/log.ts'
import type { Logger } from './telemetry/log.ts'
import { ErrorCode, McpError } from '@modelcontextprotocol/sdk/types.js'
import type { TracerProvider } from '@opentelemetry/api'
import { Tracing } from './telemetry/tracing.ts'
import { SpansRequestSchema, TraceIdSchema } from './telemetry/span-query.ts'
import { gatherTrace } from './telemetry/trace-gather.ts'
import type { GatheredTrace } from './telemetry/trace-gather.ts'
import type { SpansResult } from './telemetry/span-query.ts'
import { createCaller } from './proxy/caller.ts'
import { agentPinsFile, createPinGuard } from './proxy/pins.ts'
import type { PinGuard } from './proxy/pins.ts'
import type { CallOptions, CallStats, DependencyDeclaration, MeshTool, MeshToolContext } from './proxy/mesh-tool.ts'
import { createMetrics } from './telemetry/metrics.ts'
import { trimHeapWhenIdle } from './heap-trim.ts'
import type { MeshMetrics } from './telemetry/metrics.ts'
import { createMetricsEndpoint } from './telemetry/metrics-http.ts'
import type { MetricsEndpoint } from './telemetry/metrics-http.ts'

export type { ToolContext } from './server/tool-context.ts'

const log = logger('mesh:node')
/** The plain-HTTP warning is given once per process. */
let warnedPlain = false

/** Declares one tool: what it offers, what it takes and returns, and what it needs. */
export interface ToolSpec<I extends z.ZodRawShape, D extends Record<string, DependencyDeclaration>> extends ToolDefinition<I> {
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
  /** `https.Agent` options for outbound calls (TLS: a prebuilt `secureContext`, later). */
  connect?: ConnectOptions
  /**
   * Who is calling (the identity seam): becomes `ctx.authInfo`, and its `clientId` scopes
   * cancellations and answers to the agent's requests (sampling, elicitation) to that caller.
   */
  authenticate?: (req: IncomingMessage) => AuthInfo | undefined
  /**
   * The application's own OpenTelemetry tracer provider: the mesh's spans go there instead of
   * the node's own SDK (then `meshctl trace` finds none of them in this agent).
   */
  tracerProvider?: TracerProvider
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
  /** Requests the endpoint is serving now, with POST bodies still arriving. */
  readonly inflight: number
  /** What the endpoint refused or dropped, by reason (busy, slow readers, foreign cancels...). */
  readonly endpointStats: EndpointStats
  /** The gossip member underneath (replica, stats, addresses). */
  readonly gossip: GossipNode
  /** The Prometheus endpoint's URL (`http://127.0.0.1:<port>/metrics`) when `metrics.port` is set, after start; else empty. */
  readonly metricsUrl: string
  /** The agent's metrics now, in the Prometheus text format (with or without the endpoint). */
  metrics(): Promise<string>
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
  /**
   * The spans of one trace, gathered from this agent and the agents that kept them (as `meshctl
   * trace`): those named in `from` (or every live agent) first, then the peers their spans name.
   * Agents answer only identities of their own trust domain and their `tracing.readers`.
   */
  trace(traceId: string, options?: { from?: string[] }): Promise<GatheredTrace>
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

/**
 * Creates an agent. Options are validated here (explicit options over `MCP_MESH_*` variables);
 * a bad value throws `MESH_ERR_CONFIG_INVALID` naming it. Nothing runs until `start()`.
 */
export function createMeshNode (options: MeshNodeOptionsInput, seam: MeshNodeSeam = {}): MeshNode {
  return new Node(options, seam)
}

class Node implements MeshNode {
  /** Its lines carry the agent's name: several nodes may share a process. */
  readonly #log: Logger
  readonly options: MeshNodeOptions
  readonly #clock: Clock
  readonly #seam: MeshNodeSeam
  readonly #mcp: McpServer
  readonly #tools: ToolRegistry
  readonly #dependencies: Array<{ capability: string, version?: string }> = []
  readonly #resolver: ReturnType<typeof createResolver>
  readonly #client: McpHttpClient
  readonly #toolContext: MeshToolContext
  readonly #endpointStats: EndpointStats = { dropped: {} }
  readonly #metrics: MeshMetrics
  #metricsEndpoint?: MetricsEndpoint
  #gossip?: GossipNode
  #endpoint?: Endpoint
  #ready = false
  #settleUntil = Number.POSITIVE_INFINITY
  #started?: Promise<void>
  #stopped?: Promise<void>
  #signalHandler?: (signal: NodeJS.Signals) => void
  #stopAbort = new AbortController()
  /** Mutual TLS: the identity and the bundles of our domain and registered entities, the endpoint's server, what calls present. */
  #member?: MemberIdentity
  #advertIdentity?: Advert['identity']
  #tls?: TlsServer
  #secureContext?: SecureContext
  /** TLS contexts for calls to partner domains: our certificate, their bundle; rebuilt on renewal. */
  #partnerContexts = new Map<string, { bundle: string, context: SecureContext }>()
  readonly #trustListeners = new Set<() => void>()
  readonly #tracing: Tracing | undefined
  /** Definitions pinned by `pin: true` dependencies (the file is read on their first resolution). */
  readonly #pins: PinGuard

  constructor (input: MeshNodeOptionsInput, seam: MeshNodeSeam) {
    this.options = parseMeshNodeOptions(input)
    this.#log = log.child({ agent: this.options.name })
    this.#seam = seam
    this.#clock = seam.clock ?? systemClock
    this.#mcp = new McpServer({ name: this.options.name, version: this.options.version }, { capabilities: { tools: {}, logging: {} } })
    const mtls = this.options.tls.mode === 'strict'
    const ownDomain = this.options.tls.trustDomain
    const t = this.options.tracing
    this.#tracing = t.enabled ? new Tracing({ agent: this.options.name, size: t.spans, maxAgeMs: t.spanMaxAgeMs, ...(seam.tracerProvider === undefined ? {} : { provider: seam.tracerProvider }) }) : undefined
    const tracer = this.#tracing?.tracer
    // Read at scrape time: the parts below exist by then.
    this.#metrics = createMetrics({
      calls: () => this.#toolContext.stats,
      circuits: () => this.#toolContext.breakers.circuits(),
      outboundConnections: () => this.#client.connections,
      endpoint: () => this.#endpoint,
      gossip: () => this.#gossip,
    })
    this.#tools = createToolRegistry({
      ...(tracer === undefined ? {} : { tracer }),
      agent: this.options.name,
      events: this.#metrics.events,
      clock: this.#clock,
      propagate: headerFilter(this.options.propagateHeaders),
      // With mutual TLS, a tool's default callers are its own trust domain's, never a partner's.
      ...(mtls ? { defaultAllow: allowList([`spiffe://${ownDomain}/*`]) } : {}),
      onDenied: (tool, caller, why = 'not-authorized') => {
        this.#countDropped(why)
        this.#log('refused a call of %s by %s: %s', tool, caller ?? 'a caller with no identity', why === 'rate-limited' ? 'over its rate limit' : 'not on its allow-list')
      },
    })
    this.#tools.install(this.#mcp)
    this.#serveSpans(mtls ? ownDomain : undefined)
    const trusted = (td: string): boolean => this.#member?.trust.bundleOf(td) !== undefined
    const revoked = (id: string, key: string): boolean => this.#member?.trust.isRevoked(id, key) === true
    const pinsFile = this.options.pinsFile ?? agentPinsFile(this.options.home, this.options.name)
    this.#pins = createPinGuard({
      file: pinsFile,
      clock: this.#clock,
      approveCommand: (capability) => `meshctl pin approve ${capability} --pins ${pinsFile}`,
      onWithheld: (v, c) => { this.#log.warn('withheld %s of %s (%s): its tool definition differs from the pinned one (%s changed); to accept it: %s', v.capability, c.agent, v.spiffeId ?? c.peerId, v.changed.join(', '), v.approve) },
      onError: (err) => { this.#log.error('pins: %s', (err as Error).message) },
    })
    // explain() resolves as calls do: a pin: true spec shows which providers are withheld, and why.
    this.#resolver = createResolver({ ...(mtls ? { trustDomain: ownDomain, trusted, revoked } : {}), pins: this.#pins })
    this.#client = new McpHttpClient({
      clientName: this.options.name,
      clientVersion: this.options.version,
      ...(seam.connect === undefined ? {} : { connect: seam.connect }),
      ...(mtls ? { tls: { trustDomain: ownDomain, context: (td: string) => this.#contextFor(td) } } : {}),
    })
    this.#toolContext = createCaller({
      pins: this.#pins,
      ...(tracer === undefined ? {} : { tracer }),
      gossip: () => this.#gossip,
      client: this.#client,
      clock: this.#clock,
      settleUntil: () => this.#settleUntil,
      callTimeoutMs: this.options.callTimeoutMs,
      retry: { retries: this.options.retries, delayMs: this.options.retryDelayMs, maxDelayMs: this.options.retryMaxDelayMs },
      breaker: this.options.breaker,
      balance: this.options.balance,
      ...(this.options.zone === undefined ? {} : { zone: this.options.zone }),
      ...(this.options.hedgeAfterMs === undefined ? {} : { hedgeAfterMs: this.options.hedgeAfterMs }),
      propagate: { headers: this.options.propagateHeaders, partners: this.options.partnerHeaders },
      stopSignal: this.#stopAbort.signal,
      events: this.#metrics.events,
      ...(mtls ? { trustDomain: ownDomain, trusted, revoked, onTrustChange: (l: () => void) => { this.#trustListeners.add(l) } } : {}),
      callLocal: async (tool, args, signal, headers, onPart) => await this.#tools.callLocal(tool, args, signal, headers, onPart),
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
  get endpointStats (): EndpointStats { return this.#endpoint?.stats ?? this.#endpointStats }
  get metricsUrl (): string { return this.#metricsEndpoint?.url ?? '' }

  async metrics (): Promise<string> {
    return await this.#metrics.text()
  }

  tool<I extends z.ZodRawShape, D extends Record<string, DependencyDeclaration>> (name: string, spec: ToolSpec<I, D>, handler: ToolHandler<I, D>): this {
    if (this.#started !== undefined) throw new MeshError('MESH_ERR_TOOL_INVALID', `tool ${name}: register tools before start()`)
    const deps: Record<string, MeshTool> = {}
    const needs: ResolutionSpec[] = []
    for (const [dep, declaration] of Object.entries(spec.dependencies ?? {})) {
      try {
        needs.push(normalizeDependency(declaration as DependencySpec)[0])
      } catch (err) {
        throw new MeshError('MESH_ERR_TOOL_INVALID', `tool ${name}, dependency ${dep}: ${(err as Error).message}`, { cause: err })
      }
      deps[dep] = createMeshTool(dep, declaration, this.#toolContext)
    }
    this.#tools.register(name, spec, (args, ctx) => handler(args as z.output<z.ZodObject<I>>, deps as Injected<D>, ctx))
    for (const first of needs) {
      if (this.#dependencies.some((d) => d.capability === first.capability && d.version === first.version)) continue
      this.#dependencies.push(first.version === undefined ? { capability: first.capability } : { capability: first.capability, version: first.version })
    }
    return this
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

  async trace (traceId: string, options: { from?: string[] } = {}): Promise<GatheredTrace> {
    const id = TraceIdSchema.safeParse(traceId)
    if (!id.success) throw new MeshError('MESH_ERR_TRACE_INVALID_ID', `"${traceId}" is not a trace ID: 32 lowercase hex digits, as meshctl call --trace prints`)
    const members = this.members().filter((m) => m.advert.endpoint !== undefined && m.advert.peerId !== this.peerId && (m.liveness === 'alive' || m.liveness === 'suspect'))
    const own = this.#tracing?.ring?.trace(id.data) ?? []
    const from = options.from?.filter((f) => f !== this.options.name)
    const gathered = await gatherTrace(this.#client, members, id.data, from)
    return { ...gathered, spans: [...own, ...gathered.spans], asked: [this.options.name, ...gathered.asked] }
  }

  onTopologyChange (listener: (c: ReplicaChange) => void): () => void {
    return this.gossip.replica.onChange(listener)
  }

  start (): Promise<void> {
    this.#started ??= this.#withMetrics(async () => { await this.#start() })
    return this.#started
  }

  /** Serves `/metrics` (when `metrics.port` is set) from the start on: a start that fails closes it again. */
  async #withMetrics (start: () => Promise<void>): Promise<void> {
    const { port, host } = this.options.metrics
    if (port !== undefined) {
      this.#metricsEndpoint = createMetricsEndpoint({ host, port, metrics: this.#metrics })
      await this.#metricsEndpoint.start()
    }
    try {
      await start()
    } catch (err) {
      await this.#metricsEndpoint?.stop()
      throw err
    }
  }

  async #start (): Promise<void> {
    const o = this.options
    const { version: _v, http: _h, tls: _t, settleMs: _s, callTimeoutMs: _c, retries: _r, retryDelayMs: _rd, retryMaxDelayMs: _rm, breaker: _b, balance: _bl, zone: _z, hedgeAfterMs: _hd, tracing: _tr, propagateHeaders: _ph, partnerHeaders: _pa, drainGraceMs: _d, handleSignals: _hs, trimHeap: _th, metrics: _m, pinsFile: _pf, ...gossipOptions } = o
    // With mutual TLS, the mesh's own protocols admit only members that prove an SVID of our domain.
    const host = o.http.announceHost ?? o.http.host
    const member = o.tls.mode !== 'strict'
      ? undefined
      : new MemberIdentity({
        mesh: o.mesh,
        tls: o.tls,
        home: o.home,
        name: o.name,
        hosts: host === '0.0.0.0' || host === '::' ? [] : [host],
        libp2pKey: async () => this.#gossip!.privateKey(),
        ...(this.#seam.clock === undefined ? {} : { clock: this.#seam.clock }),
      })
    this.#member = member
    this.#gossip = createGossipNode({ ...gossipOptions, advert: this.#advertBody('alive') }, {
      ...(member === undefined ? {} : { admitter: member.admitter, notices: member.notices, checkAdvert: member.checkAdvert }),
      ...this.#seam.gossip,
      ...(this.#seam.clock === undefined ? {} : { clock: this.#seam.clock }),
    })
    if (o.tls.mode === 'off' && !warnedPlain) {
      warnedPlain = true
      process.emitWarning(`agent ${o.name}: tls.mode is off (MCP_MESH_TLS_MODE=off): its endpoint serves plain HTTP to anyone who reaches it, and it calls providers without checking who they are`, { code: 'MESH_TLS_OFF' })
    }
    try {
      if (member !== undefined) await this.#startIdentity(member)
    } catch (err) {
      await this.#gossip.stop()
      throw err
    }
    const tls = this.#tls
    this.#endpoint = createEndpoint({
      mcp: this.#mcp,
      http: o.http,
      isReady: () => this.#ready,
      fastCall: this.#tools.fastCall,
      ...(this.#seam.clock === undefined ? {} : { clock: this.#seam.clock }),
      ...(this.#seam.createServer === undefined ? {} : { createServer: this.#seam.createServer }),
      ...(this.#seam.authenticate === undefined ? {} : { authenticate: this.#seam.authenticate }),
      ...(tls === undefined || this.#seam.createServer !== undefined ? {} : { createServer: tls.createServer, authenticate: tls.authenticate }),
    })
    try {
      await this.#endpoint.start()
      await this.#tracing?.start()
      await this.#gossip.updateAdvert(this.#advertBody('alive'))
      await this.#gossip.start({ signal: this.#stopAbort.signal })
      this.#metrics.watch(this.#gossip.replica)
    } catch (err) {
      await this.#endpoint.stop()
      await this.#member?.stop()
      throw err
    }
    this.#settleUntil = this.#clock.now() + o.settleMs
    this.#gossip.ready({ signal: this.#stopAbort.signal }).then(() => { this.#ready = true }, () => {})
    // A node on an injected clock (tests, simulations) leaves the process's heap alone.
    if (o.trimHeap && this.#seam.clock === undefined) void trimHeapWhenIdle({ signal: this.#stopAbort.signal })
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

  /**
   * Takes the agent's identity from its provider, builds the TLS context its endpoint serves and
   * its calls present, and follows renewals: new connections use the new certificate, calls in
   * flight finish on the old one, and the advert endorses the new key.
   */
  async #startIdentity (member: MemberIdentity): Promise<void> {
    const t = this.options.tls
    const first = await member.start()
    // A registration or a revoke, while running: revoked domains lose their connections at once.
    member.onTrustChange(() => {
      this.#partnerContexts.clear()
      for (const l of this.#trustListeners) l()
      this.#tls?.recheck()
      this.#gossip?.recheckAdmissions()
      this.#client.renew()
    })
    this.#useIdentity(first)
    this.#tls = tlsServer({
      identity: first,
      trustDomain: t.trustDomain,
      trust: (td) => td === t.trustDomain ? undefined : member.trust.bundleOf(td),
      revoked: (id, key) => member.trust.isRevoked(id, key),
      onRefused: (reason, detail) => {
        this.#countDropped(reason)
        this.#log('refused a TLS client (%s): %s', reason, detail)
      },
    })
    member.onRenew((next) => {
      this.#useIdentity(next)
      this.#tls?.update(next)
      this.#client.renew()
      this.#gossip?.reprove().catch((err: Error) => { this.#log.error('proving the renewed identity to peers failed: %s', err) })
      this.#gossip?.updateAdvert(this.#advertBody(this.#endpoint?.draining === true ? 'draining' : 'alive')).catch((err: Error) => { this.#log.error('advertising the renewed identity failed: %s', err) })
    })
  }

  /** Counts a refusal in `endpointStats.dropped`, by reason. */
  #countDropped (reason: string): void {
    const dropped = this.#endpoint?.stats.dropped ?? this.#endpointStats.dropped
    dropped[reason] = (dropped[reason] ?? 0) + 1
  }

  #useIdentity (identity: Identity): void {
    this.#advertIdentity = advertIdentity(identity)
    this.#secureContext = secureContextOf(identity)
    this.#partnerContexts.clear()
  }

  /** The TLS context a call to a provider of `trustDomain` uses: ours, a partner's, or none (not trusted). */
  #contextFor (trustDomain: string): SecureContext | undefined {
    if (trustDomain === this.options.tls.trustDomain) return this.#secureContext
    const bundle = this.#member?.trust.bundleOf(trustDomain)
    if (bundle === undefined || this.#member === undefined) return undefined
    let c = this.#partnerContexts.get(trustDomain)
    if (c?.bundle !== bundle) {
      c = { bundle, context: secureContextOf({ ...this.#member.current(), bundlePem: bundle }) }
      this.#partnerContexts.set(trustDomain, c)
    }
    return c.context
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
    await this.#member?.stop()
    await this.#tracing?.stop()
    await this.#metricsEndpoint?.stop()
    await this.#pins.stop()
  }

  /**
   * `mesh/spans`: the spans of one trace this agent keeps, for `meshctl trace`. A method of ours
   * on the MCP endpoint (not a tool: hosts do not see it), answered with mutual TLS only to our
   * own trust domain's identities and the `tracing.readers` patterns; a partner gets
   * `MESH_ERR_CALL_NOT_AUTHORIZED` unless named.
   */
  #serveSpans (ownDomain: string | undefined): void {
    let readers: ReturnType<typeof allowList> | undefined
    try {
      readers = ownDomain === undefined ? undefined : allowList([`spiffe://${ownDomain}/*`, ...this.options.tracing.readers])
    } catch (err) {
      throw new MeshError('MESH_ERR_CONFIG_INVALID', `tracing.readers: ${(err as Error).message}`, { cause: err, details: { field: 'tracing.readers' } })
    }
    this.#mcp.server.setRequestHandler(SpansRequestSchema, (req, extra): SpansResult => {
      const caller = extra.authInfo?.clientId
      if (readers !== undefined && !readers.allows(caller)) {
        this.#countDropped('not-authorized')
        throw new McpError(ErrorCode.InvalidRequest, `${caller ?? 'a caller with no identity'} may not read the spans of agent ${this.options.name} (tracing.readers)`, { code: 'MESH_ERR_CALL_NOT_AUTHORIZED' })
      }
      return { agent: this.options.name, spans: this.#tracing?.ring?.trace(req.params.traceId) ?? [] }
    })
  }

  #removeSignalHandlers (): void {
    if (this.#signalHandler === undefined) return
    process.off('SIGTERM', this.#signalHandler)
    process.off('SIGINT', this.#signalHandler)
    this.#signalHandler = undefined
  }

  #advertBody (status: 'alive' | 'draining'): AdvertBody {
    return {
      tools: this.#tools.adverts(),
      dependencies: this.#dependencies,
      endpoint: this.#endpoint?.url,
      status,
      ...(this.options.zone === undefined ? {} : { zone: this.options.zone }),
      ...(this.#advertIdentity === undefined ? {} : { identity: this.#advertIdentity }),
    }
  }
}
