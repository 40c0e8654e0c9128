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

/** A compiled list: whether a (lowercase) header name matches. */
export type HeaderFilter = (name: string) => boolean

/** Compiles a validated list; the always and never rules included. */
export function headerFilter (patterns: readonly string[]): HeaderFilter {
  const exact = new Set([...ALWAYS, ...patterns.filter((p) => !p.endsWith('*'))])
  const prefixes = patterns.filter((p) => p.endsWith('*')).map((p) => p.slice(0, -1))
  return (name) => !NEVER.has(name) && (exact.has(name) || prefixes.some((p) => name.startsWith(p)))
}

/** The headers of `from` that pass `filter`, names lowercased; a repeated header's values joined as HTTP does. */
export function pickHeaders (from: Record<string, string | string[] | undefined>, filter: HeaderFilter): Record<string, string> | undefined {
  let out: Record<string, string> | undefined
  for (const [k, v] of Object.entries(from)) {
    if (v === undefined) continue
    const name = k.toLowerCase()
    if (!filter(name)) continue
    out ??= {}
    out[name] = Array.isArray(v) ? v.join(', ') : v
  }
  return out
}
