import { parseSpiffeId } from './spiffe-id.ts'

/**
 * Who may call a tool: SPIFFE ID patterns, each an exact ID (`spiffe://acme.com/agent/planner`)
 * or a prefix ending in `/*` (`spiffe://acme.com/agent/*`: any ID below it). Checked once at
 * registration; a check at call time is a string comparison per pattern.
 */
export interface AllowList {
  readonly patterns: readonly string[]
  allows(spiffeId: string | undefined): boolean
}

/** Parses the patterns; throws the SPIFFE ID error of the first bad one (with its index). */
export function allowList (patterns: readonly string[]): AllowList {
  const exact = new Set<string>()
  const prefixes: string[] = []
  patterns.forEach((p, i) => {
    const wildcard = p.endsWith('/*')
    const id = wildcard ? p.slice(0, -2) : p
    try {
      parseSpiffeId(id)
    } catch (err) {
      throw new Error(`allow[${i}] "${p}" is not a SPIFFE ID or a SPIFFE ID followed by /*: ${(err as Error).message}`)
    }
    if (wildcard) prefixes.push(id + '/')
    else exact.add(id)
  })
  return {
    patterns,
    allows: (spiffeId) => spiffeId !== undefined && (exact.has(spiffeId) || prefixes.some((p) => spiffeId.startsWith(p))),
  }
}
