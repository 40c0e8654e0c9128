import { createResolver, formatExplanation } from '../topology/resolver.ts'
import type { Resolution } from '../topology/resolver.ts'
import { Exit, UsageError, commaList, parse } from './args.ts'
import { common, observe } from './observe.ts'
import { cliTls } from './identity.ts'
import { printable, toJson } from './print.ts'

export const EXPLAIN_HELP = `Usage: meshctl explain <capability> [--tags <list>] [--version <range>] [--json]

Runs the resolver exactly as an agent would and prints every provider considered, its rank or
why it was rejected.
  --tags     comma list: tag (required), +tag (preferred), -tag (excluded), a|b (one of a or b)
  --version  a semver range, for example ^1.2 or >=2`

/** `meshctl explain`: how a dependency resolves, and why. */
export async function explain (argv: string[]): Promise<number> {
  const { values, positionals } = parse(argv, { ...common, tags: { type: 'string', multiple: true }, version: { type: 'string' } })
  if (values.help === true) { console.log(EXPLAIN_HELP); return Exit.ok }
  const capability = positionals[0]
  if (capability === undefined) throw new UsageError('explain needs a capability, for example: meshctl explain weather --tags +claude')
  const tags = commaList(values.tags).map((t) => t.includes('|') ? t.split('|') : t)
  const spec = { capability, ...(tags.length > 0 ? { tags } : {}), ...(values.version !== undefined ? { version: values.version } : {}) }
  const tls = await cliTls(values)
  const node = await observe(values, tls)
  const members = [...node.replica.members()]
  await node.stop()
  // Resolved as an agent with the same TLS variables would: with mutual TLS, only providers of its trust domain.
  const td = tls?.trustDomain
  const resolution = createResolver(td === undefined ? {} : { trustDomain: td }).resolve(members, spec)
  console.log(values.json === true ? toJson(resolution) : formatExplain(resolution))
  return resolution.selected === null ? Exit.noProvider : Exit.ok
}

/**
 * What `meshctl explain` prints. The resolution quotes members' names, tools, versions and tags:
 * they are escaped here, at the command's boundary (formatExplanation is topology code and prints
 * what it is given).
 */
export function formatExplain (resolution: Resolution): string {
  return formatExplanation(printable(resolution))
}
