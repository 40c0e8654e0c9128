import { get as httpGet } from 'node:http'
import { get as httpsGet } from 'node:https'
import { endpointProblem } from '../topology/endpoint.ts'
import { Exit, UsageError, painter, parse } from './args.ts'
import type { Painter } from './args.ts'
import { common, observe } from './observe.ts'
import { cliTls } from './identity.ts'
import type { CliTls } from './identity.ts'
import { checkProvider } from '../identity/tls.ts'
import type { ExpectedPeer } from '../identity/tls.ts'
import { printable, toJson } from './print.ts'

export const STATUS_HELP = `Usage: meshctl status <agent> [--json] [--bootstrap <multiaddr>] [--mesh <name>]

Shows every instance of <agent> (by name, or by peer ID or its last characters): liveness as this
mesh sees it, advert version, MCP endpoint and what its /readyz says now, tools (capability,
version, tags) and declared dependencies with the provider each resolves to.
Exit codes: 0 ok, 1 failed, 2 usage, 3 mesh unreachable, 4 no such agent.`

/** `meshctl status`: one agent as the mesh sees it, plus its own readiness. */
export async function status (argv: string[]): Promise<number> {
  const { values, positionals } = parse(argv, common)
  if (values.help === true) { console.log(STATUS_HELP); return Exit.ok }
  const who = positionals[0]
  if (who === undefined) throw new UsageError('status needs an agent name, for example: meshctl status weather-claude')
  const tls = await cliTls(values)
  const node = await observe(values, tls)
  const members = [...node.replica.members()]
  await node.stop()
  const matches = members.filter((m) => m.advert.name === who || m.advert.peerId === who || (who.length >= 6 && m.advert.peerId.endsWith(who)))
  if (matches.length === 0) {
    console.error(`meshctl: no agent named "${who}" in mesh "${node.options.mesh}"; meshctl list shows the members`)
    return Exit.noProvider
  }
  const { createResolver } = await import('../topology/resolver.ts')
  const resolver = createResolver()
  const rows = await Promise.all(matches.map(async (m) => {
    const a = m.advert
    const peer = a.identity === undefined ? undefined : { spiffeId: a.identity.id, keyHash: a.identity.key }
    const ready = a.endpoint === undefined ? undefined : await readiness(a.endpoint, a.addrs, tls, peer)
    const dependencies = a.dependencies.map((d) => {
      const r = resolver.resolve(members, d)
      return { ...d, resolvesTo: r.selected === null ? null : r.selected.agent }
    })
    return {
      name: a.name, peerId: a.peerId, role: a.role, liveness: m.liveness, status: a.status, incarnation: a.incarnation, seq: a.seq,
      endpoint: a.endpoint, ready, addrs: a.addrs,
      ...(a.identity === undefined ? {} : { spiffeId: a.identity.id, certificateExpires: new Date(a.identity.exp).toISOString() }),
      tools: a.tools.map((t) => ({ name: t.name, capability: t.capability, version: t.version, tags: t.tags })),
      dependencies,
    }
  }))
  console.log(values.json === true ? toJson(rows) : formatStatus(rows, painter()))
  return Exit.ok
}

/** One agent as `meshctl status` prints it (what `--json` prints). */
export interface StatusRow {
  name: string
  peerId: string
  liveness: string
  status: string
  incarnation: number
  seq: number
  endpoint?: string
  ready?: string
  /** The SPIFFE ID its advert endorses, and when that certificate expires (ISO 8601). */
  spiffeId?: string
  certificateExpires?: string
  tools: Array<{ name: string, capability: string, version: string, tags: string[] }>
  dependencies: Array<{ capability: string, version?: string, resolvesTo: string | null }>
}

/** The lines `meshctl status` prints; every string from the mesh is escaped (`printable`). */
export function formatStatus (rows: StatusRow[], p: Painter): string {
  const lines: string[] = []
  for (const r of printable(rows)) {
    const live = r.status === 'draining' ? p.yellow('draining') : r.liveness === 'alive' ? p.green('alive') : p.red(r.liveness)
    lines.push(`${p.bold(r.name)}  ${live}  peer ${r.peerId}  (incarnation ${r.incarnation}, seq ${r.seq})`)
    lines.push(`  endpoint   ${r.endpoint ?? '-'}${r.ready === undefined ? '' : `  readyz: ${r.ready}`}`)
    lines.push(r.spiffeId === undefined ? `  identity   ${p.yellow('none (plain HTTP)')}` : `  identity   ${r.spiffeId}  certificate expires ${r.certificateExpires}`)
    for (const t of r.tools) lines.push(`  tool       ${t.name}: ${t.capability}@${t.version}${t.tags.length > 0 ? ` [${t.tags.join(',')}]` : ''}`)
    for (const d of r.dependencies) lines.push(`  depends on ${d.capability}${d.version === undefined ? '' : `@${d.version}`} -> ${d.resolvesTo ?? p.red('no provider')}`)
  }
  return lines.join('\n')
}

/** The statuses an agent's /readyz says; anything else is shown as its HTTP status only. */
const READINESS = new Set(['ready', 'starting', 'draining'])

/**
 * What the agent's own /readyz says (ready, starting, draining), or `HTTP <code>`, or why it was
 * not read. The endpoint is a member's word: it is checked as callers check it before anything
 * is sent, redirects are not followed, and no foreign text is printed.
 */
async function readiness (endpoint: string, addrs: readonly string[], tls: CliTls | undefined, peer: ExpectedPeer | undefined): Promise<string> {
  const problem = endpointProblem(endpoint, addrs)
  if (problem !== undefined) return `not asked (${problem})`
  try {
    const url = new URL('/readyz', endpoint)
    const https = url.protocol === 'https:'
    if (https && tls === undefined) return 'not asked (it serves mutual TLS; set MCP_MESH_TLS_MODE=strict)'
    // With mutual TLS, the agent must hold the identity its advert endorses, as for a call.
    const secure = https && tls !== undefined ? { ...tls.pems, checkServerIdentity: checkProvider(peer, tls.trustDomain) } : {}
    const { status, text } = await new Promise<{ status: number, text: string }>((resolve, reject) => {
      const req = (https ? httpsGet : httpGet)(url, { signal: AbortSignal.timeout(2_000), agent: false, ...secure }, (res) => {
        let text = ''
        res.setEncoding('utf8')
        res.on('data', (chunk: string) => { if (text.length < 4096) text += chunk })
        res.on('end', () => { resolve({ status: res.statusCode ?? 0, text }) })
        res.on('error', reject)
      })
      req.on('error', reject)
    })
    let said: unknown
    // /readyz answers 200 (ready) or 503 (starting, draining); any other answer is not readiness.
    if (status === 200 || status === 503) {
      try {
        said = (JSON.parse(text) as { status?: unknown }).status
      } catch {}
    }
    return typeof said === 'string' && READINESS.has(said) ? said : `HTTP ${status}`
  } catch (err) {
    const code = (err as { code?: unknown }).code
    return `unreachable (${typeof code === 'string' && /^[A-Z0-9_]{1,40}$/.test(code) ? code : (err as Error).name})`
  }
}
