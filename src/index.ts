/**
 * A service mesh that lives inside MCP agents: agents gossip signed capability adverts over
 * libp2p, each keeps its own replica of the topology, resolves its dependencies locally and
 * calls providers directly over standard MCP (Streamable HTTP). No registry, no sidecar;
 * bootstrap nodes only open the door.
 *
 * @example
 * ```ts
 * import { createMeshNode } from 'mcp-mesh-p2p'
 * import { z } from 'zod'
 *
 * const node = createMeshNode({ name: 'trip-planner', bootstrap: [process.env.MCP_MESH_BOOTSTRAP!] })
 * node.tool('plan_trip', {
 *   input: { destination: z.string() },
 *   dependencies: { weather: { capability: 'weather', tags: ['+claude'] }, hotels: 'hotels' },
 * }, async (args, { weather, hotels }) => ({ forecast: await weather(args), hotels: await hotels(args) }))
 * await node.start()
 * ```
 */
export { createMeshNode } from './node.ts'
export type { MeshNode, MeshNodeSeam, ToolSpec, ToolHandler, ToolContext, Injected } from './node.ts'
export type { PartStream } from './server/tool-context.ts'
export type { MeshTool, MeshStream, CallOptions, CallStats, ProviderInfo, DependencyDeclaration } from './proxy/mesh-tool.ts'
export { McpHttpClient } from './proxy/mcp-client.ts'
export type { McpHttpClientInit, ConnectOptions, RawCallOptions, Progress } from './proxy/mcp-client.ts'
export type { LogMessage, ServerRequestHandler } from './proxy/server-requests.ts'
export { createEndpoint, MCP_PATH } from './server/endpoint.ts'
export type { Endpoint, EndpointInit, EndpointStats } from './server/endpoint.ts'
export { createGossipNode } from './gossip/gossip-node.ts'
export type { GossipNode, GossipStats, GossipSeam, AdvertBody } from './gossip/gossip-node.ts'
export { startBootstrap } from './bootstrap/daemon.ts'
export type { BootstrapInit } from './bootstrap/daemon.ts'
export { createResolver, formatExplanation } from './topology/resolver.ts'
export type { Resolver, Resolution, Candidate, ExplainRow, Verdict, ResolverPins } from './topology/resolver.ts'
export { toolDigest, definitionOf } from './topology/pins.ts'
export type { PinVerdict, DefinitionField, ToolDefinition as PinnedDefinition } from './topology/pins.ts'
export { normalizeDependency } from './topology/dependency.ts'
export type { DependencySpec, ResolutionSpec } from './topology/dependency.ts'
export { Replica } from './topology/replica.ts'
export type { ReplicaEntry, ReplicaChange } from './topology/replica.ts'
export { AdvertSchema, AdvertLimits } from './topology/advert.ts'
export type { Advert, ToolAdvert, Member, Liveness } from './topology/advert.ts'
export { GossipOptionsSchema, MeshNodeOptionsSchema, HttpOptionsSchema, MetricsOptionsSchema, parseGossipOptions, parseMeshNodeOptions, EnvVars } from './config.ts'
export type { GossipOptions, GossipOptionsInput, MeshNodeOptions, MeshNodeOptionsInput, HttpOptions, MetricsOptions } from './config.ts'
export { MeshError, ErrorCodes, isMeshError, MESH_ERROR_META_KEY } from './errors.ts'
export type { ErrorCode, MeshErrorMeta } from './errors.ts'
export { systemClock, ManualClock } from './clock.ts'
export type { Clock } from './clock.ts'
