import { readFile } from 'node:fs/promises'
import { parseGossipOptions } from '../config.ts'
import { listRevocations, revoke as revokeIdentity } from '../identity/revocations.ts'
import { Exit, UsageError, parse } from './args.ts'
import { printable, toJson } from './print.ts'

/** `meshctl revoke --help`. */
export const REVOKE_HELP = `Usage: meshctl revoke <spiffe-id> | --cert <pem> | --list [options]

Revokes one agent identity for every agent and bootstrap of this home (<home>/revoked): by SPIFFE
ID (every certificate naming it), or one certificate (--cert: its key). Running agents take it up
without a restart: its connections are closed, its calls refused (tls-revoked), its proofs of
admission refused, and its adverts no longer resolve. Agents on other hosts need the same file
(copy <home>/revoked, as a CRL is distributed); with short-lived SVIDs, also stop issuing to it.

  --cert <pem>      revoke the one certificate in this file
  --list            the revoked identities
  --home <dir>      default ~/.mcp-mesh (env MCP_MESH_HOME)
  --json            machine-readable output`

const options = {
  cert: { type: 'string' },
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
    else console.log(rows.length === 0 ? 'nothing revoked' : printable(rows).map((r) => `${r.spiffeId}${r.keyHash === undefined ? '' : ` (certificate key ${r.keyHash})`}  ${r.revokedAt}`).join('\n'))
    return Exit.ok
  }
  const id = positionals[0]
  if ((id === undefined) === (values.cert === undefined)) throw new UsageError('revoke needs a SPIFFE ID or --cert <pem> (one of them), for example: meshctl revoke spiffe://mcp-mesh.local/agent/weather')
  const what = id !== undefined
    ? { spiffeId: id }
    : { certPem: await readFile(values.cert!, 'utf8').catch((err: Error) => { throw new UsageError(`cannot read --cert ${values.cert}: ${err.message}`) }) }
  const r = await revokeIdentity(home, what)
  console.log(values.json === true ? toJson(r) : `revoked ${r.spiffeId}${r.keyHash === undefined ? ' (every certificate)' : ' (this certificate)'}`)
  return Exit.ok
}
