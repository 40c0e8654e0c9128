import { request } from 'undici'
import type { Dispatcher } from 'undici'
import { endpointProblem } from '../topology/endpoint.ts'
import { Exit, UsageError, painter, parse } from './args.ts'
import { common, observe } from './observe.ts'

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
  const node = await observe(values)
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
    const ready = a.endpoint === undefined ? undefined : await readiness(a.endpoint, a.addrs)
    const dependencies = a.dependencies.map((d) => {
      const r = resolver.resolve(members, d)
      return { ...d, resolvesTo: r.selected === null ? null : r.selected.agent }
    })
    return {
      name: a.name, peerId: a.peerId, role: a.role, liveness: m.liveness, status: a.status, incarnation: a.incarnation, seq: a.seq,
      endpoint: a.endpoint, ready, addrs: a.addrs,
      tools: a.tools.map((t) => ({ name: t.name, capability: t.capability, version: t.version, tags: t.tags })),
      dependencies,
    }
  }))
  if (values.json === true) { console.log(JSON.stringify(rows, null, 2)); return Exit.ok }
  const p = painter()
  for (const r of rows) {
    const live = r.status === 'draining' ? p.yellow('draining') : r.liveness === 'alive' ? p.green('alive') : p.red(r.liveness)
    console.log(`${p.bold(r.name)}  ${live}  peer ${r.peerId}  (incarnation ${r.incarnation}, seq ${r.seq})`)
    console.log(`  endpoint   ${r.endpoint ?? '-'}${r.ready === undefined ? '' : `  readyz: ${r.ready}`}`)
    for (const t of r.tools) console.log(`  tool       ${t.name}: ${t.capability}@${t.version}${t.tags.length > 0 ? ` [${t.tags.join(',')}]` : ''}`)
    for (const d of r.dependencies) console.log(`  depends on ${d.capability}${d.version === undefined ? '' : `@${d.version}`} -> ${d.resolvesTo ?? p.red('no provider')}`)
  }
  return Exit.ok
}

/** The statuses an agent's /readyz says; anything else is shown as its HTTP status only. */
const READINESS = new Set(['ready', 'starting', 'draining'])

/**
 * What the agent's own /readyz says (ready, starting, draining), or `HTTP <code>`, or why it was
 * not read. The endpoint is a member's word: it is checked as callers check it before anything
 * is sent, redirects are not followed, and no foreign text is printed.
 */
async function readiness (endpoint: string, addrs: readonly string[]): Promise<string> {
  const problem = endpointProblem(endpoint, addrs)
  if (problem !== undefined) return `not asked (${problem})`
  try {
    const res = await request(new URL('/readyz', endpoint), { signal: AbortSignal.timeout(2_000) })
    let said: unknown
    // /readyz answers 200 (ready) or 503 (starting, draining); any other answer is not readiness.
    if (res.statusCode === 200 || res.statusCode === 503) {
      try {
        said = (JSON.parse(await readSome(res.body, 1024)) as { status?: unknown }).status
      } catch {}
    } else {
      await res.body.dump({ limit: 1024 }).catch(() => {})
    }
    return typeof said === 'string' && READINESS.has(said) ? said : `HTTP ${res.statusCode}`
  } catch (err) {
    const code = (err as { code?: unknown }).code
    return `unreachable (${typeof code === 'string' && /^[A-Z0-9_]{1,40}$/.test(code) ? code : (err as Error).name})`
  }
}

/** At most `max` bytes of a body as text; the rest is dropped with its connection. */
async function readSome (body: Dispatcher.ResponseData['body'], max: number): Promise<string> {
  body.on('error', () => {}) // undici reports a body dropped early as an error nobody waits for
  const chunks: Buffer[] = []
  let size = 0
  for await (const chunk of body) {
    chunks.push(chunk as Buffer)
    size += (chunk as Buffer).length
    if (size > max) break
  }
  body.destroy()
  return Buffer.concat(chunks).subarray(0, max).toString('utf8')
}
