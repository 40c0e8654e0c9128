import { join } from 'node:path'
import type { z } from 'zod'
import { createGossipNode } from '../gossip/gossip-node.ts'
import type { GossipNode } from '../gossip/gossip-node.ts'
import { optionsFromEnv, parseGossipOptions, TlsOptionsSchema } from '../config.ts'
import type { GossipOptions, GossipOptionsInput, TlsOptions } from '../config.ts'
import { MeshError } from '../errors.ts'
import { MemberIdentity } from '../identity/member.ts'
import { advertIdentity } from '../identity/advert-check.ts'

type TlsOptionsInput = z.input<typeof TlsOptionsSchema>

/** Options of a bootstrap daemon: a gossip node with a stable identity that opens the door. */
export type BootstrapInit = Omit<GossipOptionsInput, 'role' | 'name'> & { name?: string, tls?: TlsOptionsInput }

/**
 * The options a bootstrap runs with: `init` over the `MCP_MESH_*` variables of `env`, read by
 * config.ts exactly as an agent reads them (home, colocated, mesh, key file). Its key lives in
 * `<home>/bootstrap.key` unless a key file is given, so its multiaddr (which carries the peer ID)
 * stays the same across restarts.
 */
export function bootstrapOptions (init: BootstrapInit = {}, env: NodeJS.ProcessEnv = process.env): GossipOptions {
  const { tls: _tls, ...gossip } = init
  const o = parseGossipOptions({ ...gossip, name: init.name ?? 'bootstrap', role: 'bootstrap' }, env)
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
  const options = bootstrapOptions(init, env)
  const tls = bootstrapTls(init.tls, env)
  if (tls.mode === 'off') {
    const node = createGossipNode(options)
    await node.start()
    return node
  }
  // With mutual TLS (the default, as for agents) it proves an identity of the mesh's trust domain
  // to every member, and admits only members that prove one: `spiffe://<domain>/agent/<name>`.
  // It admits registered entities' agents too (federation), so a partner joins through it, and
  // relays revocations like any member.
  const member: MemberIdentity = new MemberIdentity({ mesh: options.mesh, tls, home: options.home, name: options.name, hosts: [], libp2pKey: async () => node.privateKey() })
  const node = createGossipNode(options, { admitter: member.admitter, notices: member.notices, checkAdvert: member.checkAdvert, release: async () => { await member.stop() } })
  try {
    // Its advert names its identity with the chain, as every advert must on a mesh with mutual TLS.
    await node.updateAdvert({ tools: [], identity: advertIdentity(await member.start()) })
    member.onTrustChange(() => { node.recheckAdmissions() })
    member.onRenew((next) => {
      node.reprove().catch(() => {})
      node.updateAdvert({ tools: [], identity: advertIdentity(next) }).catch(() => {})
    })
    await node.start()
  } catch (err) {
    await node.stop()
    throw err
  }
  return node
}

/** The TLS options of a bootstrap: `init.tls` over the same `MCP_MESH_TLS_*` variables agents read. */
function bootstrapTls (tls: TlsOptionsInput | undefined, env: NodeJS.ProcessEnv): TlsOptions {
  const fromEnv = (optionsFromEnv(env, true) as { tls?: Record<string, unknown> }).tls ?? {}
  const parsed = TlsOptionsSchema.safeParse({ ...fromEnv, ...tls })
  if (!parsed.success) {
    throw new MeshError('MESH_ERR_CONFIG_INVALID', `invalid TLS options of the bootstrap: ${parsed.error.issues.map((i) => `tls.${i.path.join('.')}: ${i.message}`).join('; ')}`, { details: { fields: parsed.error.issues.map((i) => ['tls', ...i.path].join('.')) } })
  }
  return parsed.data
}
