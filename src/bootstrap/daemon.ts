import { join } from 'node:path'
import { createGossipNode } from '../gossip/gossip-node.ts'
import type { GossipNode } from '../gossip/gossip-node.ts'
import { parseGossipOptions } from '../config.ts'
import type { GossipOptions, GossipOptionsInput } from '../config.ts'

/** Options of a bootstrap daemon: a gossip node with a stable identity that opens the door. */
export type BootstrapInit = Omit<GossipOptionsInput, 'role' | 'name'> & { name?: string }

/**
 * The options a bootstrap runs with: `init` over the `MCP_MESH_*` variables of `env`, read by
 * config.ts exactly as an agent reads them (home, colocated, mesh, key file). Its key lives in
 * `<home>/bootstrap.key` unless a key file is given, so its multiaddr (which carries the peer ID)
 * stays the same across restarts.
 */
export function bootstrapOptions (init: BootstrapInit = {}, env: NodeJS.ProcessEnv = process.env): GossipOptions {
  const o = parseGossipOptions({ ...init, name: init.name ?? 'bootstrap', role: 'bootstrap' }, env)
  return { ...o, keyFile: o.keyFile ?? (o.ephemeralKey ? undefined : join(o.home, `${o.name}.key`)) }
}

/**
 * Starts a bootstrap node: it serves join snapshots and anti-entropy like any member, and is
 * never in a call's path. `env` is where its `MCP_MESH_*` variables come from (`meshctl start`
 * passes the agents' environment, so its local bootstrap reads what they read).
 */
export async function startBootstrap (init: BootstrapInit = {}, env: NodeJS.ProcessEnv = process.env): Promise<GossipNode> {
  // Every option is explicit now, so the node's own parse takes nothing else from process.env (a key
  // file there is ignored with an ephemeral key, as it would be anyway).
  const node = createGossipNode(bootstrapOptions(init, env))
  await node.start()
  return node
}
