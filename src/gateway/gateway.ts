import { Server } from '@modelcontextprotocol/sdk/server/index.js'
import { CallToolRequestSchema, ErrorCode as RpcCode, ListToolsRequestSchema, McpError } from '@modelcontextprotocol/sdk/types.js'
import type { CallToolResult } from '@modelcontextprotocol/sdk/types.js'
import { trace } from '@opentelemetry/api'
import type { Clock, TimerHandle } from '../clock.ts'
import { isMeshError } from '../errors.ts'
import type { GossipNode } from '../gossip/gossip-node.ts'
import { createCaller } from '../proxy/caller.ts'
import type { McpHttpClient } from '../proxy/mcp-client.ts'
import { createMeshTool } from '../proxy/mesh-tool.ts'
import type { PinGuard } from '../proxy/pins.ts'
import type { MeshTool } from '../proxy/mesh-tool.ts'
import { meshErrorResult } from '../server/tool-result.ts'
import { createResolver } from '../topology/resolver.ts'
import { inboundContext, injectInto } from '../telemetry/spans.ts'
import { gatewayTools } from './tools.ts'
import { hostLogLevel, passThrough } from './passthrough.ts'
import type { GatewayFilter, GatewayTool } from './tools.ts'

/** What a gateway is built from: a joined mesh member (no advert) and a client to call with. */
export interface GatewayInit {
  node: GossipNode
  client: McpHttpClient
  clock: Clock
  /** With mutual TLS: the gateway's trust domain (providers it cannot call are not listed). */
  trustDomain?: string
  filter?: GatewayFilter
  /** Timeout of one call, unless the provider recommends another (ms). */
  callTimeoutMs: number
  /** How long topology changes settle before the list is compared and hosts told (ms, default 100). */
  debounceMs?: number
  /** The server's name and version in `initialize`. */
  info?: { name: string, version: string }
  /** Pinned tool definitions (see `createPinGuard`); none: pinning is off, hosts see any change at once. */
  pins?: PinGuard
}

/** The mesh as MCP servers: one `Server` per host connection, all fed from one replica. */
export interface Gateway {
  /** A new MCP server for one host connection (stdio, or one HTTP session); closed by `stop()` too. */
  server(): Server
  /** The tools a host sees now. */
  tools(): GatewayTool[]
  /** Stops watching the topology, aborts calls in flight and closes every server. Idempotent. */
  stop(): Promise<void>
}

/**
 * Creates the gateway. Calls go through the same path as agent code (`createCaller` and
 * `createMeshTool`), so failover, retries, deadlines and tracing apply; a tool's or the mesh's
 * failure comes back as an `isError` result carrying the mesh code.
 */
export function createGateway (init: GatewayInit): Gateway {
  const { node } = init
  const stopping = new AbortController()
  const { pins } = init
  const resolver = createResolver({ ...(init.trustDomain === undefined ? {} : { trustDomain: init.trustDomain }), ...(pins === undefined ? {} : { pins }) })
  const caller = createCaller({ gossip: () => node, client: init.client, clock: init.clock, settleUntil: () => 0, callTimeoutMs: init.callTimeoutMs, stopSignal: stopping.signal, ...(init.trustDomain === undefined ? {} : { trustDomain: init.trustDomain }), ...(pins === undefined ? {} : { pins }) })
  const meshTools = new Map<string, MeshTool>()
  const servers = new Set<Server>()
  let current = gatewayTools(node.replica.members(), resolver, init.filter, pins)
  let shown = JSON.stringify(current.map((t) => t.tool))
  let timer: TimerHandle | undefined

  const recompute = (): void => {
    timer = undefined
    current = gatewayTools(node.replica.members(), resolver, init.filter, pins)
    const next = JSON.stringify(current.map((t) => t.tool))
    if (next === shown) return
    shown = next
    for (const s of servers) s.sendToolListChanged().catch(() => {}) // a host gone mid-send: its close cleans up
  }
  // Debounced: a join or a restart comes as several changes; hosts hear once. An approved (or
  // forgotten) pin changes what hosts see too.
  const changed = (): void => { if (timer === undefined && !stopping.signal.aborted) timer = init.clock.setTimeout(recompute, init.debounceMs ?? 100) }
  const off = node.replica.onChange(changed)
  const offPins = pins?.onChange(changed)

  const toolOf = (g: GatewayTool): MeshTool => {
    const key = JSON.stringify(g.spec)
    let t = meshTools.get(key)
    if (t === undefined) meshTools.set(key, t = createMeshTool(g.spec.capability, g.spec, caller))
    return t
  }

  return {
    server () {
      const server = new Server(init.info ?? { name: 'mcp-mesh-gateway', version: '0.1.0' }, { capabilities: { tools: { listChanged: true }, logging: {} } })
      const logLevel = hostLogLevel(server)
      server.setRequestHandler(ListToolsRequestSchema, () => ({ tools: current.map((t) => t.tool) }))
      server.setRequestHandler(CallToolRequestSchema, async (req, extra): Promise<CallToolResult> => {
        const g = current.find((t) => t.tool.name === req.params.name)
        if (g === undefined) throw new McpError(RpcCode.InvalidParams, `unknown tool ${req.params.name}: the mesh offers ${current.map((t) => t.tool.name).join(', ') || 'nothing now'}`)
        const token = req.params._meta?.progressToken
        try {
          // The host gets the provider's whole answer (its content and _meta), not the structured part.
          return await toolOf(g)(req.params.arguments, {
            raw: true,
            signal: extra.signal, // the host's cancellation
            ...hostTraceContext(req.params._meta, extra.requestInfo?.headers), // the agents' spans join the host's trace
            ...passThrough(server, extra, logLevel), // the provider's logs and requests to the host
            ...(token === undefined
              ? {}
              : { onProgress: (p) => { extra.sendNotification({ method: 'notifications/progress', params: { progressToken: token, ...p } }).catch(() => {}) } }),
          })
        } catch (err) {
          if (isMeshError(err)) return meshErrorResult(err.code, err.message)
          throw err
        }
      })
      servers.add(server)
      server.onclose = () => { servers.delete(server) }
      return server
    },
    tools: () => current,
    async stop () {
      if (stopping.signal.aborted) return
      stopping.abort()
      off()
      offPins?.()
      if (timer !== undefined) init.clock.clearTimeout(timer)
      await Promise.all([...servers].map((s) => s.close().catch(() => {})))
    },
  }
}

/**
 * The host's W3C trace context, as headers for the call: read as an agent reads an inbound call
 * (HTTP headers over Streamable HTTP, else the request's `_meta`, how MCP clients without headers
 * carry it over stdio) and written as a call writes it. A malformed `traceparent` is dropped with
 * its `tracestate`: the agents start their own trace.
 */
export function hostTraceContext (meta: Record<string, unknown> | undefined, headers: Record<string, string | string[] | undefined> | undefined): { headers?: Record<string, string> } {
  const span = trace.getSpan(inboundContext(headers ?? {}, meta))
  if (span === undefined) return {}
  const out: Record<string, string> = {}
  injectInto(out, span)
  return { headers: out }
}
