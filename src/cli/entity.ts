import { readFile } from 'node:fs/promises'
import { parseGossipOptions } from '../config.ts'
import { listEntities, registerEntity, revokeEntity } from '../identity/entities.ts'
import { DEFAULT_TRUST_DOMAIN } from '../identity/spiffe-id.ts'
import { Exit, UsageError, parse } from './args.ts'
import { printable, toJson } from './print.ts'

/** `meshctl entity --help`. */
export const ENTITY_HELP = `Usage: meshctl entity <register|list|revoke> [options]

Federation: the other organisations ("entities") whose agents this host's agents trust. Each is a
trust domain and the CA certificate that issues its SVIDs, kept in <home>/entities/<name>.json.
Running agents and bootstraps pick up every change without a restart; a revoke closes their
connections with that domain at once. A partner's providers are used only by dependencies that
opt in to its domain (trustDomains: ['partner.example']), and its agents may call only the tools
whose allow-list names them.

  entity register <name> --ca-cert <pem> [--trust-domain <td>]
                                trusts the partner's CA for its trust domain (taken from the CA
                                certificate's spiffe:// URI SAN when not given)
  entity list                   the registered entities
  entity revoke <name>          stops trusting the entity's domain

  --home <dir>                  default ~/.mcp-mesh (env MCP_MESH_HOME)
  --json                        machine-readable output

Our own trust domain (env MCP_MESH_TRUST_DOMAIN, default "${DEFAULT_TRUST_DOMAIN}") and a domain
registered already are refused.`

const options = {
  'ca-cert': { type: 'string' },
  'trust-domain': { type: 'string' },
  home: { type: 'string' },
  json: { type: 'boolean' },
  help: { type: 'boolean', short: 'h' },
} as const

/** `meshctl entity`: register, list and revoke partner organisations. */
export async function entity (argv: string[]): Promise<number> {
  const { values, positionals } = parse(argv, options)
  if (values.help === true) { console.log(ENTITY_HELP); return Exit.ok }
  const [sub, name] = positionals
  const home = parseGossipOptions({ name: 'meshctl', ...(values.home === undefined ? {} : { home: values.home }) }).home
  const own = process.env.MCP_MESH_TRUST_DOMAIN ?? DEFAULT_TRUST_DOMAIN
  if (sub === 'register') {
    if (name === undefined) throw new UsageError('entity register needs a name, for example: meshctl entity register partner-corp --ca-cert partner-ca.pem')
    if (values['ca-cert'] === undefined) throw new UsageError('entity register needs --ca-cert <pem>: the CA certificate that issues the partner\'s SVIDs')
    const caPem = await readFile(values['ca-cert'], 'utf8').catch((err: Error) => { throw new UsageError(`cannot read --ca-cert ${values['ca-cert']}: ${err.message}`) })
    const e = await registerEntity(home, own, { name, caPem, ...(values['trust-domain'] === undefined ? {} : { trustDomain: values['trust-domain'] }) })
    console.log(values.json === true ? toJson({ name: e.name, trustDomain: e.trustDomain, registeredAt: e.registeredAt }) : `registered ${e.name}: agents of ${e.trustDomain} are trusted peers for the dependencies that opt in`)
    return Exit.ok
  }
  if (sub === 'list') {
    const rows = (await listEntities(home)).map((e) => ({ name: e.name, trustDomain: e.trustDomain, registeredAt: e.registeredAt }))
    if (values.json === true) console.log(toJson(rows))
    else console.log(rows.length === 0 ? 'no entity registered' : printable(rows).map((r) => `${r.name.padEnd(20)} ${r.trustDomain.padEnd(30)} ${r.registeredAt}`).join('\n'))
    return Exit.ok
  }
  if (sub === 'revoke') {
    if (name === undefined) throw new UsageError('entity revoke needs a name (meshctl entity list)')
    const e = await revokeEntity(home, name)
    console.log(values.json === true ? toJson({ name: e.name, trustDomain: e.trustDomain, revoked: true }) : `revoked ${e.name}: ${e.trustDomain} is no longer trusted`)
    return Exit.ok
  }
  throw new UsageError(sub === undefined ? 'entity needs a subcommand: register, list or revoke' : `unknown entity subcommand "${sub}"`)
}
