import { createGossipNode } from '../gossip/gossip-node.ts'
import type { GossipNode } from '../gossip/gossip-node.ts'
import { MeshError } from '../errors.ts'
import { UsageError, commaList } from './args.ts'
import { parseGossipOptions } from '../config.ts'
import { memberAdmitter } from '../identity/start.ts'
import type { CliTls } from './identity.ts'

/** Options every command that reads the mesh shares. */
export const common = {
  bootstrap: { type: 'string', multiple: true },
  mesh: { type: 'string' },
  timeout: { type: 'string' },
  json: { type: 'boolean' },
  help: { type: 'boolean', short: 'h' },
  cert: { type: 'string' },
  key: { type: 'string' },
  ca: { type: 'string' },
} as const

/**
 * Joins as an observer (no advert, throwaway key) and waits for the first sync. With mutual TLS
 * (`tls`, from `cliTls`) it proves its identity to the members, which admit nobody else.
 */
export async function observe (values: { bootstrap?: string[], mesh?: string, timeout?: string }, tls: CliTls | undefined): Promise<GossipNode> {
  const bootstrap = commaList(values.bootstrap)
  const env = commaList(process.env.MCP_MESH_BOOTSTRAP)
  if (bootstrap.length === 0 && env.length === 0) throw new UsageError('no mesh to join: pass --bootstrap <multiaddr> or set MCP_MESH_BOOTSTRAP')
  const timeout = Number(values.timeout ?? 5_000)
  if (!Number.isInteger(timeout) || timeout <= 0) throw new UsageError(`--timeout must be a positive number of milliseconds, got "${values.timeout}"`)
  const options = { name: 'meshctl', role: 'observer' as const, ephemeralKey: true, mesh: values.mesh, bootstrap: bootstrap.length > 0 ? bootstrap : undefined }
  // Read at each handshake: a long-running command (the gateway) renews `tls.pems` in place.
  const pems = tls === undefined ? undefined : () => ({ certPem: tls.pems.cert, keyPem: tls.pems.key, bundlePem: tls.pems.ca })
  const node = createGossipNode(options, pems === undefined ? {} : { admitter: memberAdmitter(parseGossipOptions(options).mesh, tls!.trustDomain, pems) })
  await node.start()
  try {
    await node.ready({ signal: AbortSignal.timeout(timeout) })
  } catch (err) {
    await node.stop()
    // With TLS off it proves no identity, and members with mutual TLS (the default) admit nobody without one.
    const hint = tls === undefined ? ' (with MCP_MESH_TLS_MODE=off meshctl has no identity: a mesh with mutual TLS does not admit it)' : ''
    throw new MeshError('MESH_ERR_JOIN_FAILED', `could not reach the mesh within ${timeout} ms through ${(bootstrap.length > 0 ? bootstrap : env).join(', ')}${hint}`, { cause: err })
  }
  return node
}

