import { readFile } from 'node:fs/promises'
import { parseGossipOptions } from '../config.ts'
import { listRevocations, revoke as revokeIdentity } from '../identity/revocations.ts'
import { Exit, UsageError, parse } from './args.ts'
import { printable, toJson } from './print.ts'

/** `meshctl revoke --help`. */
export const REVOKE_HELP = `Usage: meshctl revoke <spiffe-id> | --cert <pem> | --list [options]

Revokes one agent identity: by SPIFFE ID (every certificate naming it), or one certificate
(--cert: its key). It is written to <home>/revoked and signed by a CA of the identity's trust
domain: the home's local CA ("auto"), or the CA key given with --ca-key. A signed revocation
spreads to every member of the mesh, on every host, within seconds (members exchange them in
every sync; one that joins later gets them with its first), and each member checks the signature
against the bundle of that trust domain. Members take it up without a restart: the identity's
connections are closed, its calls refused (tls-revoked), its proofs of admission refused, and
its adverts no longer resolve. An unsigned revocation (no CA key here) holds for this home only.
With short-lived SVIDs, also stop issuing to it.

  --cert <pem>      revoke the one certificate in this file
  --ca-key <pem>    sign with this CA key (file, SPIRE or Vault deployments: the key of a CA in
                    the trust domain's bundle)
  --list            the revoked identities
  --home <dir>      default ~/.mcp-mesh (env MCP_MESH_HOME)
  --json            machine-readable output`

const options = {
  cert: { type: 'string' },
  'ca-key': { type: 'string' },
  list: { type: 'boolean' },
  home: { type: 'string' },
  json: { type: 'boolean' },
  help: { type: 'boolean', short: 'h' },
} as const

/** `meshctl revoke`: revoke an agent identity, or list what is revoked. */
export async function revoke (argv: string[]): Promise<number> {
  const { values, positionals } = parse(argv, options)
  if (values.help === true) { console.log(REVOKE_HELP); return Exit.ok }
  const home = parseGossipOptions({ name: 'meshctl', ...(values.home === undefined ? {} : { home: values.home }) }).home
  if (values.list === true) {
    const rows = await listRevocations(home)
    if (values.json === true) console.log(toJson(rows))
    else console.log(rows.length === 0 ? 'nothing revoked' : printable(rows).map((r) => `${r.spiffeId}${r.keyHash === undefined ? '' : ` (certificate key ${r.keyHash})`}  ${r.revokedAt}${r.sig === undefined ? '  (this home only: unsigned)' : ''}`).join('\n'))
    return Exit.ok
  }
  const id = positionals[0]
  if ((id === undefined) === (values.cert === undefined)) throw new UsageError('revoke needs a SPIFFE ID or --cert <pem> (one of them), for example: meshctl revoke spiffe://mcp-mesh.local/agent/weather')
  const what = id !== undefined
    ? { spiffeId: id }
    : { certPem: await readFile(values.cert!, 'utf8').catch((err: Error) => { throw new UsageError(`cannot read --cert ${values.cert}: ${err.message}`) }) }
  const caKey = values['ca-key']
  const caKeyPem = caKey === undefined ? undefined : await readFile(caKey, 'utf8').catch((err: Error) => { throw new UsageError(`cannot read --ca-key ${caKey}: ${err.message}`) })
  const r = await revokeIdentity(home, what, caKeyPem === undefined ? {} : { caKeyPem })
  const scope = r.sig === undefined ? '; unsigned (no CA key of its trust domain here): it holds for this home only' : '; signed by its CA: it spreads to the whole mesh'
  console.log(values.json === true ? toJson(r) : `revoked ${r.spiffeId}${r.keyHash === undefined ? ' (every certificate)' : ' (this certificate)'}${scope}`)
  return Exit.ok
}
