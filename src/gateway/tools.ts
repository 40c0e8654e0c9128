import type { Tool } from '@modelcontextprotocol/sdk/types.js'
import type { Member } from '../topology/advert.ts'
import type { ResolutionSpec } from '../topology/dependency.ts'
import type { Candidate, Resolver } from '../topology/resolver.ts'

/** What a host sees of the mesh: which capabilities, and which providers count. */
export interface GatewayFilter {
  /** Only these capabilities (all when absent or empty). */
  capabilities?: string[]
  /** The resolver's tag syntax: `tag` required, `+tag` preferred, `-tag` excluded, a nested list an OR group. */
  tags?: ResolutionSpec['tags']
}

/** One tool the gateway offers: its MCP definition and the spec a call resolves with. */
export interface GatewayTool {
  tool: Tool
  spec: ResolutionSpec
  /** The provider whose advert gave the definition. */
  from: Candidate
}

/** The JSON schema MCP requires when a provider advertises none: any object. */
const ANY_INPUT = { type: 'object' as const }

/**
 * The gateway's tools: one per capability offered by a live, not draining member, named by the
 * capability. The definition (description, schemas, annotations) is the advert of the provider the
 * resolver would choose; when its peers advertise other input schemas, the chosen one wins and the
 * description says so (a call that fails over may reach one of them). Sorted by name, so two
 * lists of the same topology compare equal.
 */
export function gatewayTools (members: Iterable<Member>, resolver: Resolver, filter: GatewayFilter = {}): GatewayTool[] {
  const live = [...members].filter((m) => m.liveness !== 'dead' && m.liveness !== 'left' && m.advert.status !== 'draining' && m.advert.role !== 'bootstrap')
  const wanted = filter.capabilities === undefined || filter.capabilities.length === 0 ? undefined : new Set(filter.capabilities)
  const capabilities = new Set<string>()
  for (const m of live) for (const t of m.advert.tools) if (wanted === undefined || wanted.has(t.capability)) capabilities.add(t.capability)
  const out: GatewayTool[] = []
  for (const capability of [...capabilities].sort()) {
    const spec: ResolutionSpec = { capability, ...(filter.tags === undefined || filter.tags.length === 0 ? {} : { tags: filter.tags }) }
    const { selected, ranked } = resolver.resolve(live, spec)
    if (selected === null) continue
    out.push({ tool: definition(capability, selected, ranked), spec, from: selected })
  }
  return out
}

/** The MCP tool of `capability`, from the chosen provider's advert. */
function definition (capability: string, chosen: Candidate, ranked: Candidate[]): Tool {
  const t = chosen.tool
  const schema = JSON.stringify(t.inputSchema ?? null)
  const others = new Set(ranked.filter((c) => JSON.stringify(c.tool.inputSchema ?? null) !== schema).map((c) => c.agent))
  let description = t.description ?? `The mesh capability ${capability}.`
  if (others.size > 0) {
    description += `\n\n(Providers of ${capability} advertise different tools: this definition is ${chosen.agent}'s (${t.name} ${t.version}), the provider the mesh chooses; ${[...others].sort().join(', ')} advertise other input schemas.)`
  }
  return {
    name: capability,
    ...(t.annotations?.title === undefined ? {} : { title: t.annotations.title }),
    description,
    // MCP requires an object schema at the top; the provider's keywords stay as they are.
    inputSchema: { ...(t.inputSchema ?? ANY_INPUT), type: 'object' } as Tool['inputSchema'],
    ...(t.outputSchema === undefined ? {} : { outputSchema: t.outputSchema as Tool['outputSchema'] }),
    ...(t.annotations === undefined ? {} : { annotations: t.annotations }),
  }
}
