import type { Tool } from '@modelcontextprotocol/sdk/types.js'
import type { Member } from '../topology/advert.ts'
import type { ResolutionSpec } from '../topology/dependency.ts'
import type { Candidate, Resolver } from '../topology/resolver.ts'
import { definitionOf } from '../topology/pins.ts'
import type { Pin, ToolDefinition } from '../topology/pins.ts'

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
  /** The provider whose advert gave the definition; none when every provider is withheld (the pinned definition is shown). */
  from?: Candidate
  /** Providers withheld for a definition that differs from the pinned one (agent names), when no provider offers the pinned one. */
  withheld?: string[]
}

/** The gateway's pins, as the list needs them: the pinned definition of a capability. */
export interface GatewayPins {
  pinned(capability: string): Pin | undefined
}

/** The JSON schema MCP requires when a provider advertises none: any object. */
const ANY_INPUT = { type: 'object' as const }

/**
 * The gateway's tools: one per capability offered by a live, not draining member, named by the
 * capability. The definition (description, schemas, annotations) is the advert of the provider the
 * resolver would choose; when its peers advertise other input schemas, the chosen one wins and the
 * description says so (a call that fails over may reach one of them). Sorted by name, so two
 * lists of the same topology compare equal.
 *
 * With `pins` (the resolver built with the same pins), specs are `pin: true`: providers whose
 * definition differs from the pinned one are not chosen, and when no provider offers the pinned
 * one the tool keeps its pinned definition (a host never sees the new one before it is approved).
 */
export function gatewayTools (members: Iterable<Member>, resolver: Resolver, filter: GatewayFilter = {}, pins?: GatewayPins): GatewayTool[] {
  const live = [...members].filter((m) => m.liveness !== 'dead' && m.liveness !== 'left' && m.advert.status !== 'draining' && m.advert.role !== 'bootstrap')
  const wanted = filter.capabilities === undefined || filter.capabilities.length === 0 ? undefined : new Set(filter.capabilities)
  const capabilities = new Set<string>()
  for (const m of live) for (const t of m.advert.tools) if (wanted === undefined || wanted.has(t.capability)) capabilities.add(t.capability)
  const out: GatewayTool[] = []
  for (const capability of [...capabilities].sort()) {
    const spec: ResolutionSpec = { capability, ...(filter.tags === undefined || filter.tags.length === 0 ? {} : { tags: filter.tags }), ...(pins === undefined ? {} : { pin: true }) }
    const { selected, ranked, explanation } = resolver.resolve(live, spec)
    if (selected !== null) {
      out.push({ tool: definition(capability, selected, ranked), spec, from: selected })
      continue
    }
    const withheld = explanation.filter((r) => r.pin !== undefined).map((r) => r.agent)
    const pin = pins?.pinned(capability)
    if (withheld.length > 0 && pin !== undefined) out.push({ tool: mcpTool(capability, pin.definition, pin.definition.description ?? `The mesh capability ${capability}.`), spec, withheld })
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
  return mcpTool(capability, definitionOf(t), description)
}

/** An MCP tool named `capability` with `d`'s title, schemas and annotations, and `description`. */
function mcpTool (capability: string, d: ToolDefinition, description: string): Tool {
  const annotations = d.title === undefined ? d.annotations : { ...d.annotations, title: d.title }
  return {
    name: capability,
    ...(d.title === undefined ? {} : { title: d.title }),
    description,
    // MCP requires an object schema at the top; the provider's keywords stay as they are.
    inputSchema: { ...(d.inputSchema ?? ANY_INPUT), type: 'object' } as Tool['inputSchema'],
    ...(d.outputSchema === undefined ? {} : { outputSchema: d.outputSchema as Tool['outputSchema'] }),
    ...(annotations === undefined ? {} : { annotations: annotations as Tool['annotations'] }),
  }
}
