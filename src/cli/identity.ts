import type { SecureContext } from 'node:tls'
import { createSecureContext } from 'node:tls'
import { optionsFromEnv, parseGossipOptions, TlsOptionsSchema } from '../config.ts'
import type { TlsOptions } from '../config.ts'
import { MeshError } from '../errors.ts'
import { UsageError } from './args.ts'
import { pemBlocks } from '../identity/tls.ts'
import type { IdentityProvider } from '../identity/provider.ts'

/** One identity from a provider that is stopped at once (its key folder goes once the PEMs are read). */
async function onceFrom (started: Promise<IdentityProvider>): Promise<CliTls['pems']> {
  const provider = await started
  const id = provider.current()
  await provider.stop()
  return { cert: id.certPem, key: id.keyPem, ca: id.bundlePem }
}

/** How long the identity `meshctl` issues itself lives: one command. */
const CLI_SVID_TTL_MS = 10 * 60_000

/** The TLS a `meshctl` command calls agents with, when the mesh runs mutual TLS. */
export interface CliTls {
  trustDomain: string
  context: SecureContext
  /** The PEMs behind `context`, for plain `https` requests (`/readyz`). */
  pems: { cert: string, key: string, ca: string }
}

/**
 * `meshctl`'s identity: the `--cert`, `--key` and `--ca` files when given; else from the same
 * `MCP_MESH_TLS_*` variables as agents: none when the mode is `off`; with `auto`, a 10-minute
 * SVID for `spiffe://<domain>/agent/meshctl` issued in memory by the local CA in the home folder
 * (no key is written); with `vault`, the same from Vault; with `file`, the files named.
 */
export async function cliTls (flags: { cert?: string, key?: string, ca?: string } = {}, env: NodeJS.ProcessEnv = process.env): Promise<CliTls | undefined> {
  const fromEnv = optionsFromEnv(env, true) as { tls?: Record<string, unknown> }
  const given = [flags.cert, flags.key, flags.ca].filter((f) => f !== undefined).length
  if (given > 0 && given < 3) throw new UsageError('--cert, --key and --ca go together: the SVID, its private key and the trust bundle of its domain')
  const tlsInput = given === 3 ? { ...fromEnv.tls, mode: 'strict', provider: 'file', certFile: flags.cert, keyFile: flags.key, bundleFile: flags.ca } : (fromEnv.tls ?? {})
  const parsed = TlsOptionsSchema.safeParse(tlsInput)
  if (!parsed.success) {
    throw new MeshError('MESH_ERR_CONFIG_INVALID', `invalid MCP_MESH_TLS_* variables: ${parsed.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; ')}`, { details: { fields: parsed.error.issues.map((i) => ['tls', ...i.path].join('.')) } })
  }
  const tls: TlsOptions = parsed.data
  if (tls.mode === 'off') return undefined
  let pems: CliTls['pems']
  if (tls.provider === 'file') {
    const { readIdentityFiles } = await import('../identity/file-provider.ts')
    const id = await readIdentityFiles({ certPath: tls.certFile!, keyPath: tls.keyFile!, bundlePath: tls.bundleFile! })
    pems = { cert: id.certPem, key: id.keyPem, ca: id.bundlePem }
    // The files name the trust domain: the SVID's, unless MCP_MESH_TRUST_DOMAIN says otherwise.
    if (fromEnv.tls?.trustDomain === undefined) return { trustDomain: id.facts.trustDomain, pems, context: createSecureContext({ ...pems, ca: pemBlocks(pems.ca), minVersion: 'TLSv1.3' }) }
  } else if (tls.provider === 'spire') {
    // The workload's SVID from the SPIRE agent, as agents get theirs.
    const { startSpireProvider } = await import('../identity/spire-provider.ts')
    pems = await onceFrom(startSpireProvider({ socketPath: tls.spireSocket! }))
  } else if (tls.provider === 'vault') {
    // A 10-minute SVID from Vault, as agents get theirs.
    const { startVaultProvider, vaultInit } = await import('../identity/vault-provider.ts')
    pems = await onceFrom(startVaultProvider(await vaultInit(tls, 'meshctl', [], CLI_SVID_TTL_MS)))
  } else {
    const { home } = parseGossipOptions({ name: 'meshctl' }, env)
    const { LocalCa } = await import('../identity/local-ca.ts')
    const { issueSvid } = await import('../identity/svid.ts')
    // No CA: the error says where it looked; agents with mutual TLS create it in their home folder.
    const ca = await LocalCa.open(home, tls.trustDomain, { create: false })
    const svid = await issueSvid(ca, { name: 'meshctl', hosts: [], ttlMs: CLI_SVID_TTL_MS })
    pems = { cert: svid.certPem, key: svid.keyPem, ca: svid.bundlePem }
  }
  return { trustDomain: tls.trustDomain, pems, context: createSecureContext({ ...pems, ca: pemBlocks(pems.ca), minVersion: 'TLSv1.3' }) }
}
