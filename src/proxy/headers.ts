import { z } from 'zod'

/**
 * Header propagation: which inbound headers a handler's own calls carry on (`propagateHeaders`,
 * `MCP_MESH_PROPAGATE_HEADERS`), as MCP Mesh's users configure it: exact names or prefixes
 * ending in `*`, case-insensitive. W3C trace context always travels; the headers that make the
 * request itself (and the mesh's budget) never do, whatever the list says.
 */

/** Always propagated: W3C trace context. */
const ALWAYS = ['traceparent', 'tracestate']
/** Never propagated: they belong to one request or one connection, or the mesh sets them. */
const NEVER = new Set(['host', 'connection', 'keep-alive', 'content-length', 'content-type', 'content-encoding', 'transfer-encoding', 'te', 'trailer', 'upgrade',
  'accept', 'accept-encoding', 'expect', 'mcp-protocol-version', 'mcp-session-id', 'last-event-id', 'mcp-mesh-timeout-ms', 'x-mesh-timeout', 'mcp-mesh-session', 'proxy-authorization', 'proxy-connection'])
const TOKEN = /^[!#$%&'*+.^_`|~0-9a-z-]+$/

/** One entry of a propagation list: a header name, or a prefix ending in `*` (a bare `*` is refused). */
export const HeaderPatternSchema = z.string().trim().toLowerCase().refine((p) => p !== '*', 'a bare * would send every header, credentials included, to every provider: name the headers or prefixes').refine((p) => TOKEN.test(p.endsWith('*') ? p.slice(0, -1) : p) && !p.slice(0, -1).includes('*'), 'a header name, or a prefix ending in * (for example x-tenant-*)')

/**
 * A compiled list: whether a (lowercase) header name matches; `names`, when the list has no
 * prefixes, every name that can match (so a lookup per name can stand in for a scan).
 */
export type HeaderFilter = ((name: string) => boolean) & { readonly names?: readonly string[] }

/** Compiles a validated list; the always and never rules included. */
export function headerFilter (patterns: readonly string[]): HeaderFilter {
  const exact = new Set([...ALWAYS, ...patterns.filter((p) => !p.endsWith('*'))])
  const prefixes = patterns.filter((p) => p.endsWith('*')).map((p) => p.slice(0, -1))
  const filter = (name: string): boolean => !NEVER.has(name) && (exact.has(name) || prefixes.some((p) => name.startsWith(p)))
  return prefixes.length > 0 ? filter : Object.assign(filter, { names: [...exact].filter((n) => !NEVER.has(n)) })
}

/**
 * `pickHeaders` for headers as node:http gives them (names already lowercase): with a list of
 * exact names, a lookup per name rather than a scan of every header the request carries.
 */
export function pickInbound (from: Record<string, string | string[] | undefined>, filter: HeaderFilter): Record<string, string> | undefined {
  const names = filter.names
  if (names === undefined) return pickHeaders(from, filter)
  let out: Record<string, string> | undefined
  for (const name of names) {
    const v = from[name]
    if (typeof v !== 'string' && !Array.isArray(v)) continue // absent (or a name an object inherits)
    out ??= {}
    out[name] = joined(v)
  }
  return out
}

/** A header's value as one string: a repeated header's values joined as HTTP does. */
function joined (v: string | string[]): string {
  return Array.isArray(v) ? v.join(', ') : v
}

/** The headers of `from` that pass `filter`, names lowercased; a repeated header's values joined as HTTP does. */
export function pickHeaders (from: Record<string, string | string[] | undefined>, filter: HeaderFilter): Record<string, string> | undefined {
  let out: Record<string, string> | undefined
  for (const [k, v] of Object.entries(from)) {
    if (v === undefined) continue
    const name = k.toLowerCase()
    if (!filter(name)) continue
    out ??= {}
    out[name] = joined(v)
  }
  return out
}
