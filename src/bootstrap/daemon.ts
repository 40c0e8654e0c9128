import { join } from 'node:path'
import { createGossipNode } from '../gossip/gossip-node.ts'
import type { GossipNode } from '../gossip/gossip-node.ts'
import type { GossipOptionsInput } from '../config.ts'

/** Options of a bootstrap daemon: a gossip node with a stable identity that opens the door. */
export type BootstrapInit = Omit<GossipOptionsInput, 'role' | 'name'> & { name?: string }

/**
 * Starts a bootstrap node: it serves join snapshots and anti-entropy like any member, and is
 * never in a call's path. Its key lives in `<home>/bootstrap.key` unless `keyFile` says otherwise,
 * so its multiaddr (which carries the peer ID) stays the same across restarts.
 */
export async function startBootstrap (init: BootstrapInit = {}): Promise<GossipNode> {
  const name = init.name ?? 'bootstrap'
  const home = init.home ?? process.env.MCP_MESH_HOME
  const keyFile = init.keyFile ?? process.env.MCP_MESH_KEY_FILE ?? (init.ephemeralKey === true ? undefined : join(home ?? join(process.env.HOME ?? '.', '.mcp-mesh'), `${name}.key`))
  const node = createGossipNode({ ...init, name, role: 'bootstrap', keyFile })
  await node.start()
  return node
}
