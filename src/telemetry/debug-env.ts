// The `DEBUG` convention of the `debug` package (and of @libp2p/logger, which the mesh logged through
// before pino): `DEBUG=mesh:gossip,mesh:admission` or `DEBUG=mesh:*`. Kept so the switches the
// README documented still work; MCP_MESH_LOG_LEVEL is the way for everything else.

/**
 * The patterns of a `DEBUG` value: comma or space separated, `*` matching anything, a leading `-`
 * excluding (exclusions win), as the `debug` package reads them.
 */
export interface DebugPatterns {
  enabled(namespace: string): boolean
}

/** Parses a `DEBUG` value (undefined or empty: nothing enabled). */
export function parseDebug (value: string | undefined): DebugPatterns {
  const include: RegExp[] = []
  const exclude: RegExp[] = []
  for (const part of (value ?? '').split(/[\s,]+/)) {
    if (part === '' || part === '-') continue
    const negated = part.startsWith('-')
    const body = (negated ? part.slice(1) : part).replace(/[.+?^${}()|[\]\\]/g, '\\$&').replace(/\*/g, '.*')
    ;(negated ? exclude : include).push(new RegExp(`^${body}$`))
  }
  return {
    enabled: (ns) => include.some((re) => re.test(ns)) && !exclude.some((re) => re.test(ns)),
  }
}

/**
 * The level `DEBUG` asks for one namespace: `trace` when `<ns>:trace` is enabled (libp2p's trace
 * convention; `mesh:*` enables it too, as it did), `debug` when `<ns>` is, else undefined.
 */
export function debugLevel (patterns: DebugPatterns, namespace: string): 'trace' | 'debug' | undefined {
  if (patterns.enabled(`${namespace}:trace`)) return 'trace'
  if (patterns.enabled(namespace)) return 'debug'
  return undefined
}
