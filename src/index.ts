/**
 * A service mesh that lives inside MCP agents: agents gossip signed capability adverts over
 * libp2p, each keeps its own replica of the topology and resolves its dependencies locally.
 * No registry, no sidecar; bootstrap nodes only open the door.
 *
 * @example
 * ```ts
 * import { createGossipNode, createResolver } from 'mcp-mesh-p2p'
 *
 * const node = createGossipNode({
 *   name: 'weather-agent',
 *   bootstrap: [process.env.MESH_BOOTSTRAP!],
 *   advert: { tools: [{ name: 'get_weather', capability: 'weather', version: '1.0.0', tags: ['claude'] }] },
 * })
 * await node.start()
 * await node.ready()
 * const r = createResolver().resolve(node.replica.members(), { capability: 'weather', tags: ['+claude'] })
 * console.log(r.selected?.agent)
 * await node.stop()
 * ```
 */
export { createGossipNode } from './gossip/gossip-node.ts'
export type { GossipNode, GossipStats, GossipSeam, AdvertBody } from './gossip/gossip-node.ts'
export { startBootstrap } from './bootstrap/daemon.ts'
export type { BootstrapInit } from './bootstrap/daemon.ts'
export { createResolver, formatExplanation } from './topology/resolver.ts'
export type { Resolver, Resolution, Candidate, ExplainRow, Verdict } from './topology/resolver.ts'
export { normalizeDependency } from './topology/dependency.ts'
export type { DependencySpec, ResolutionSpec } from './topology/dependency.ts'
export { Replica } from './topology/replica.ts'
export type { ReplicaEntry, ReplicaChange } from './topology/replica.ts'
export { AdvertSchema, AdvertLimits } from './topology/advert.ts'
export type { Advert, ToolAdvert, Member, Liveness } from './topology/advert.ts'
export { GossipOptionsSchema, parseGossipOptions, EnvVars } from './config.ts'
export type { GossipOptions, GossipOptionsInput } from './config.ts'
export { MeshError, ErrorCodes, isMeshError } from './errors.ts'
export type { ErrorCode } from './errors.ts'
export { systemClock, ManualClock } from './clock.ts'
export type { Clock } from './clock.ts'
