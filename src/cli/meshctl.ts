import { createResolver, formatExplanation } from '../topology/resolver.ts'
import type { ReplicaEntry } from '../topology/replica.ts'
import { isMeshError } from '../errors.ts'
import { Exit, UsageError, commaList, painter, parse } from './args.ts'
import { common, observe } from './observe.ts'
import { call, CALL_HELP } from './call.ts'
import { status, STATUS_HELP } from './status.ts'
import { start, START_HELP } from './start.ts'

const HELP = `Usage: meshctl <command> [options]

Commands:
  start <agent files...>    runs agents as processes (and a local bootstrap when none is given)
  call <capability> [json]  calls a capability and prints the result and which agent served it
  status <agent>            one agent: liveness, endpoint, readiness, tools, dependencies
  list                      agents, capabilities, tags, versions, endpoints and liveness
  explain <capability>      how a dependency on <capability> resolves, and why

Common options:
  --bootstrap <multiaddr>   a bootstrap or any agent of the mesh, repeatable (env MCP_MESH_BOOTSTRAP)
  --mesh <name>             mesh name (default "default"; env MCP_MESH_NAMESPACE)
  --timeout <ms>            how long to try to join (default 5000)
  --json                    machine-readable output
  -h, --help                help for a command

meshctl joins the mesh as an observer (no advert, a throwaway identity), takes a snapshot of the
topology and works from it. Exit codes: 0 ok, 1 failed, 2 usage error, 3 mesh unreachable,
4 no provider (explain, call) or no such agent (status). Run meshctl <command> --help for more.`

const LIST_HELP = `Usage: meshctl list [--all] [--json] [--bootstrap <multiaddr>] [--mesh <name>]

Prints every member: name, role, liveness, capabilities (capability@version [tags]), peer ID and
endpoint. Dead and left members are hidden unless --all is given.`

const EXPLAIN_HELP = `Usage: meshctl explain <capability> [--tags <list>] [--version <range>] [--json]

Runs the resolver exactly as an agent would and prints every provider considered, its rank or
why it was rejected.
  --tags     comma list: tag (required), +tag (preferred), -tag (excluded), a|b (one of a or b)
  --version  a semver range, for example ^1.2 or >=2`

function memberJson (e: ReplicaEntry) {
  const a = e.advert
  return { name: a.name, role: a.role, liveness: e.liveness, status: a.status, peerId: a.peerId, incarnation: a.incarnation, seq: a.seq, endpoint: a.endpoint, addrs: a.addrs, tools: a.tools.map((t) => ({ name: t.name, capability: t.capability, version: t.version, tags: t.tags, description: t.description })), dependencies: a.dependencies }
}

async function list (argv: string[]): Promise<number> {
  const { values } = parse(argv, { ...common, all: { type: 'boolean' } })
  if (values.help === true) { console.log(LIST_HELP); return Exit.ok }
  const node = await observe(values)
  const rows = [...node.replica.members()]
    .filter((e) => values.all === true || e.liveness === 'alive' || e.liveness === 'suspect')
    .sort((a, b) => a.advert.name.localeCompare(b.advert.name) || (a.advert.peerId < b.advert.peerId ? -1 : 1))
  await node.stop()
  if (values.json === true) { console.log(JSON.stringify(rows.map(memberJson), null, 2)); return Exit.ok }
  const p = painter()
  const colour = { alive: p.green, suspect: p.yellow, dead: p.red, left: p.dim } as const
  const table = [['NAME', 'ROLE', 'LIVENESS', 'CAPABILITIES', 'PEER', 'ENDPOINT']]
  for (const e of rows) {
    const a = e.advert
    const caps = a.tools.map((t) => `${t.capability}@${t.version}${t.tags.length > 0 ? ` [${t.tags.join(',')}]` : ''}`).join('; ') || '-'
    table.push([a.name, a.role, a.status === 'draining' ? 'draining' : e.liveness, caps, `…${a.peerId.slice(-8)}`, a.endpoint ?? '-'])
  }
  const widths = table[0].map((_, i) => Math.max(...table.map((r) => r[i].length)))
  for (const [i, r] of table.entries()) {
    const line = r.map((c, j) => c.padEnd(widths[j])).join('  ').trimEnd()
    console.log(i === 0 ? p.bold(line) : line.replace(r[2], (colour[r[2] as keyof typeof colour] ?? ((s: string) => s))(r[2])))
  }
  console.log(p.dim(`${rows.length} member(s) in mesh "${node.options.mesh}"`))
  return Exit.ok
}

async function explain (argv: string[]): Promise<number> {
  const { values, positionals } = parse(argv, { ...common, tags: { type: 'string', multiple: true }, version: { type: 'string' } })
  if (values.help === true) { console.log(EXPLAIN_HELP); return Exit.ok }
  const capability = positionals[0]
  if (capability === undefined) throw new UsageError('explain needs a capability, for example: meshctl explain weather --tags +claude')
  const tags = commaList(values.tags).map((t) => t.includes('|') ? t.split('|') : t)
  const spec = { capability, ...(tags.length > 0 ? { tags } : {}), ...(values.version !== undefined ? { version: values.version } : {}) }
  const node = await observe(values)
  const members = [...node.replica.members()]
  await node.stop()
  const resolution = createResolver().resolve(members, spec)
  if (values.json === true) console.log(JSON.stringify(resolution, null, 2))
  else console.log(formatExplanation(resolution))
  return resolution.selected === null ? Exit.noProvider : Exit.ok
}

async function main (argv: string[]): Promise<number> {
  const [command, ...rest] = argv
  if (command === undefined || command === '-h' || command === '--help' || command === 'help') { console.log(HELP); return command === undefined ? Exit.usage : Exit.ok }
  if (command === 'list') return list(rest)
  if (command === 'call') return call(rest)
  if (command === 'status') return status(rest)
  if (command === 'start') return start(rest)
  if (command === 'explain') return explain(rest)
  throw new UsageError(`unknown command "${command}"`)
}

main(process.argv.slice(2)).then((code) => { process.exitCode = code }, (err: unknown) => {
  if (err instanceof UsageError) {
    const helps: Record<string, string> = { list: LIST_HELP, explain: EXPLAIN_HELP, call: CALL_HELP, status: STATUS_HELP, start: START_HELP }
    console.error(`meshctl: ${err.message}\n\n${helps[process.argv[2] ?? ''] ?? HELP}`)
    process.exitCode = Exit.usage
    return
  }
  if (isMeshError(err, 'MESH_ERR_RESOLVE_INVALID_SPEC')) { console.error(`meshctl: ${err.message}`); process.exitCode = Exit.usage; return }
  console.error(`meshctl: ${isMeshError(err) ? `${err.code}: ` : ''}${(err as Error).message}`)
  process.exitCode = isMeshError(err, 'MESH_ERR_JOIN_FAILED') ? Exit.unreachable : isMeshError(err, 'MESH_ERR_CALL_NO_PROVIDER') ? Exit.noProvider : Exit.failure
})
