import { cliTls } from './identity.ts'
import type { ReplicaEntry } from '../topology/replica.ts'
import { Exit, painter, parse } from './args.ts'
import type { Painter } from './args.ts'
import { common, observe } from './observe.ts'
import { printable, toJson } from './print.ts'

export const LIST_HELP = `Usage: meshctl list [--all] [--json] [--bootstrap <multiaddr>] [--mesh <name>]

Prints every member: name, role, liveness, capabilities (capability@version [tags]), peer ID and
endpoint. Dead and left members are hidden unless --all is given.`

/** One member as `meshctl list --json` prints it. */
export type MemberRow = ReturnType<typeof memberRow>

/** A replica entry as plain data (what `--json` prints and `formatList` reads). */
export function memberRow (e: ReplicaEntry) {
  const a = e.advert
  return { name: a.name, role: a.role, liveness: e.liveness, status: a.status, peerId: a.peerId, incarnation: a.incarnation, seq: a.seq, endpoint: a.endpoint, addrs: a.addrs, tools: a.tools.map((t) => ({ name: t.name, capability: t.capability, version: t.version, tags: t.tags, description: t.description })), dependencies: a.dependencies }
}

/** `meshctl list`: every member of the mesh. */
export async function list (argv: string[]): Promise<number> {
  const { values } = parse(argv, { ...common, all: { type: 'boolean' } })
  if (values.help === true) { console.log(LIST_HELP); return Exit.ok }
  const node = await observe(values, await cliTls(values))
  const rows = [...node.replica.members()]
    .filter((e) => values.all === true || e.liveness === 'alive' || e.liveness === 'suspect')
    .sort((a, b) => a.advert.name.localeCompare(b.advert.name) || (a.advert.peerId < b.advert.peerId ? -1 : 1))
    .map(memberRow)
  await node.stop()
  console.log(values.json === true ? toJson(rows) : formatList(rows, node.options.mesh, painter()))
  return Exit.ok
}

/** The table `meshctl list` prints; every string from the mesh is escaped (`printable`). */
export function formatList (members: MemberRow[], mesh: string, p: Painter): string {
  const colour: Record<string, (s: string) => string> = { alive: p.green, suspect: p.yellow, draining: p.yellow, dead: p.red, left: p.dim }
  const table = [['NAME', 'ROLE', 'LIVENESS', 'CAPABILITIES', 'PEER', 'ENDPOINT']]
  for (const m of printable(members)) {
    const caps = m.tools.map((t) => `${t.capability}@${t.version}${t.tags.length > 0 ? ` [${t.tags.join(',')}]` : ''}`).join('; ') || '-'
    table.push([m.name, m.role, m.status === 'draining' ? 'draining' : m.liveness, caps, `…${m.peerId.slice(-8)}`, m.endpoint ?? '-'])
  }
  const widths = table[0].map((_, i) => Math.max(...table.map((r) => r[i].length)))
  const lines = table.map((r, i) => {
    const cells = r.map((c, j) => c.padEnd(widths[j]))
    if (i === 0) return p.bold(cells.join('  ').trimEnd())
    cells[2] = (colour[r[2]] ?? ((s: string) => s))(cells[2])
    return cells.join('  ').trimEnd()
  })
  lines.push(p.dim(`${members.length} member(s) in mesh "${mesh}"`))
  return lines.join('\n')
}
