import type { CallToolResult } from '@modelcontextprotocol/sdk/types.js'
import semver from 'semver'
import { MeshError } from '../errors.ts'
import type { Clock } from '../clock.ts'
import type { GossipNode } from '../gossip/gossip-node.ts'
import { createResolver } from '../topology/resolver.ts'
import type { Candidate, Resolution } from '../topology/resolver.ts'
import type { ResolutionSpec } from '../topology/dependency.ts'
import type { McpHttpClient } from './mcp-client.ts'
import type { MeshToolContext } from './mesh-tool.ts'

/** What a caller (an agent, or `meshctl call`) is built from. */
export interface CallerInit {
  /** The gossip member whose replica resolves dependencies (undefined until started). */
  gossip: () => GossipNode | undefined
  client: McpHttpClient
  clock: Clock
  settleUntil: () => number
  callTimeoutMs: number
  /** Aborts every call in flight (the node is stopping). */
  stopSignal: AbortSignal
  /** Runs a tool of this agent in process; observers have none. */
  callLocal?: (tool: string, args: unknown, signal: AbortSignal) => Promise<CallToolResult>
}

/** Providers that refused a connection are tried last for this long. */
const AVOID_MS = 10_000

/**
 * The context MeshTools call through: resolution against the local replica, cached until the
 * topology changes (resolving is a scan of every member; a call should not pay it), with round
 * robin rotating within the top tier; remote calls through the pooled client.
 */
export function createCaller (init: CallerInit): MeshToolContext {
  const resolver = createResolver()
  const cache = new Map<string, { resolution: Resolution, tier: number, turn: number }>()
  let watched: GossipNode | undefined

  const gossip = (): GossipNode => {
    const g = init.gossip()
    if (g === undefined) throw new MeshError('MESH_ERR_NOT_STARTED', 'the node has not been started: await node.start() before calling dependencies')
    if (watched !== g) {
      watched = g
      cache.clear()
      g.replica.onChange(() => cache.clear())
    }
    return g
  }

  return {
    clock: init.clock,
    selfPeerId: () => init.gossip()?.peerId ?? '',
    settleUntil: init.settleUntil,
    callTimeoutMs: init.callTimeoutMs,
    stopSignal: init.stopSignal,
    stats: { ok: 0, failed: {}, failovers: 0 },
    avoid: new Map(),
    avoidMs: AVOID_MS,

    resolve (specs: ResolutionSpec[], key: string): Resolution {
      const g = gossip()
      let entry = cache.get(key)
      if (entry === undefined) {
        const resolution = resolver.resolve(g.replica.members(), specs, key)
        const top = resolution.ranked[0]
        const tier = top === undefined ? 0 : resolution.ranked.filter((c) => sameTier(c, top)).length
        entry = { resolution, tier, turn: 0 }
        cache.set(key, entry)
        return resolution
      }
      const { resolution, tier } = entry
      if (tier <= 1) return resolution
      const pick = ++entry.turn % tier
      const ranked = [resolution.ranked[pick], ...resolution.ranked.filter((_, i) => i !== pick)]
      return { ...resolution, selected: ranked[0], ranked }
    },

    nextChange (signal: AbortSignal): Promise<void> {
      const replica = gossip().replica
      return new Promise((resolve, reject) => {
        const off = replica.onChange(() => { done(); resolve() })
        const onAbort = (): void => { done(); reject(signal.reason) }
        const done = (): void => { off(); signal.removeEventListener('abort', onAbort) }
        if (signal.aborted) { onAbort(); return }
        signal.addEventListener('abort', onAbort, { once: true })
      })
    },

    async callRemote (c, args, o) {
      if (c.endpoint === undefined) {
        throw new MeshError('MESH_ERR_CALL_UNREACHABLE', `${c.agent} advertises no MCP endpoint`, { details: { notSent: true } })
      }
      return await init.client.callTool(c.endpoint, c.tool.name, args, {
        signal: o.signal, // already linked to the stop signal by the MeshTool
        ...(o.headers === undefined ? {} : { headers: o.headers }),
        ...(o.onProgress === undefined ? {} : { onProgress: o.onProgress }),
      })
    },

    async callLocal (tool, args, signal) {
      if (init.callLocal === undefined) throw new MeshError('MESH_ERR_CALL_NO_PROVIDER', `tool ${tool} is not served by this process`)
      return await init.callLocal(tool, args, signal)
    },

    offered (): string[] {
      const out = new Set<string>()
      for (const m of gossip().replica.members()) {
        if (m.liveness === 'dead' || m.liveness === 'left' || m.advert.status === 'draining') continue
        for (const t of m.advert.tools) out.add(t.capability)
      }
      return [...out].sort()
    },
  }
}

function sameTier (a: Candidate, b: Candidate): boolean {
  return a.liveness === b.liveness && a.score === b.score && semver.eq(a.version, b.version)
}
