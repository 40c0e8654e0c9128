import { mkdir, rm, writeFile } from 'node:fs/promises'
import { join, resolve } from 'node:path'
import { parseGossipOptions } from '../config.ts'
import { LocalCa } from '../identity/local-ca.ts'
import { DEFAULT_TRUST_DOMAIN } from '../identity/spiffe-id.ts'
import { DEFAULT_SVID_TTL_MS, issueSvid } from '../identity/svid.ts'
import { Exit, UsageError, commaList, parse } from './args.ts'
import { CA_HELP } from './ca-help.ts'
import { toJson } from './print.ts'

const options = {
  'trust-domain': { type: 'string' },
  home: { type: 'string' },
  out: { type: 'string' },
  host: { type: 'string', multiple: true },
  ttl: { type: 'string' },
  json: { type: 'boolean' },
  help: { type: 'boolean', short: 'h' },
} as const

/** `meshctl ca`: create, show and issue from the local CA. */
export async function ca (argv: string[]): Promise<number> {
  const { values, positionals } = parse(argv, options)
  if (values.help === true) { console.log(CA_HELP); return Exit.ok }
  const [sub, name] = positionals
  // The home folder as agents read it (MCP_MESH_HOME, else ~/.mcp-mesh), so the CA is where they look.
  const home = parseGossipOptions({ name: 'meshctl', ...(values.home === undefined ? {} : { home: values.home }) }).home
  const trustDomain = values['trust-domain'] ?? process.env.MCP_MESH_TRUST_DOMAIN ?? DEFAULT_TRUST_DOMAIN
  if (sub === 'init' || sub === 'show') {
    const authority = await LocalCa.open(home, trustDomain, { create: sub === 'init' })
    const c = authority.certificate
    const info = {
      trustDomain,
      subject: c.subject,
      fingerprintSha256: Buffer.from(await c.getThumbprint('SHA-256')).toString('hex').match(/../g)!.join(':').toUpperCase(),
      notBefore: c.notBefore.toISOString(),
      notAfter: c.notAfter.toISOString(),
      certificate: authority.paths.cert,
      key: authority.paths.key,
    }
    console.log(values.json === true ? toJson(info) : Object.entries(info).map(([k, v]) => `${k.padEnd(18)}${v}`).join('\n'))
    return Exit.ok
  }
  if (sub === 'issue') {
    if (name === undefined) throw new UsageError('ca issue needs an agent name, for example: meshctl ca issue weather --out ./weather-tls')
    if (values.out === undefined) throw new UsageError('ca issue needs --out <dir>: where to write svid.pem, svid.key and bundle.pem')
    const hours = Number(values.ttl ?? DEFAULT_SVID_TTL_MS / 3600_000)
    if (!Number.isFinite(hours) || hours <= 0) throw new UsageError(`--ttl must be a positive number of hours, got "${values.ttl}"`)
    const hosts = commaList(values.host)
    const authority = await LocalCa.open(home, trustDomain, { create: false })
    const svid = await issueSvid(authority, { name, hosts: hosts.length > 0 ? hosts : ['localhost', '127.0.0.1'], ttlMs: Math.round(hours * 3600_000) })
    const out = resolve(values.out)
    await mkdir(out, { recursive: true, mode: 0o700 })
    await writeFile(join(out, 'svid.pem'), svid.certPem)
    // Created afresh, so an old file's looser mode never carries over to the new key.
    await rm(join(out, 'svid.key'), { force: true })
    await writeFile(join(out, 'svid.key'), svid.keyPem, { mode: 0o600, flag: 'wx' })
    await writeFile(join(out, 'bundle.pem'), svid.bundlePem)
    const info = { spiffeId: svid.spiffeId, notAfter: svid.notAfter.toISOString(), files: ['svid.pem', 'svid.key', 'bundle.pem'].map((f) => join(out, f)) }
    console.log(values.json === true ? toJson(info) : `issued ${info.spiffeId}, valid until ${info.notAfter}\n${info.files.join('\n')}`)
    return Exit.ok
  }
  throw new UsageError(sub === undefined ? 'ca needs a subcommand: init, show or issue' : `unknown ca subcommand "${sub}"`)
}
