import { MeshError } from '../errors.ts'

/** The trust domain a newcomer's mesh uses, as in MCP Mesh (`MCP_MESH_TRUST_DOMAIN`). */
export const DEFAULT_TRUST_DOMAIN = 'mcp-mesh.local'

/** How long an SVID the mesh issues lives unless told otherwise: 24 h. */
export const DEFAULT_SVID_TTL_MS = 24 * 3600_000

/** A trust domain: lowercase letters, digits, dots, dashes and underscores (SPIFFE ID spec, 2.1). */
const TRUST_DOMAIN = /^[a-z0-9._-]{1,255}$/
/** A path segment: letters, digits, dots, dashes and underscores, and not `.` or `..` (SPIFFE ID spec, 2.2). */
const SEGMENT = /^[a-zA-Z0-9._-]+$/
/** SPIFFE IDs are at most 2048 bytes (SPIFFE ID spec, 2.3). */
const MAX_ID = 2048

/** A parsed SPIFFE ID. */
export interface SpiffeId {
  trustDomain: string
  /** The path, with its leading slash (`/agent/weather`). */
  path: string
}

/** True when `td` is a valid trust domain name. */
export function isTrustDomain (td: string): boolean {
  return TRUST_DOMAIN.test(td)
}

/**
 * Parses a SPIFFE ID, `spiffe://<trust-domain>/<path>`, by the SPIFFE ID rules: no port, user
 * info, query or fragment, a lowercase trust domain, and path segments that are not empty, `.` or
 * `..`. Throws `MESH_ERR_IDENTITY_INVALID` naming what is wrong.
 */
export function parseSpiffeId (id: string): SpiffeId {
  const bad = (why: string): MeshError => new MeshError('MESH_ERR_IDENTITY_INVALID', `"${id.slice(0, 100)}" is not a SPIFFE ID: ${why}`, { details: { id: id.slice(0, 300) } })
  if (id.length > MAX_ID) throw bad(`longer than ${MAX_ID} bytes`)
  if (!id.startsWith('spiffe://')) throw bad('it must start with spiffe://')
  const rest = id.slice('spiffe://'.length)
  const slash = rest.indexOf('/')
  const trustDomain = slash === -1 ? rest : rest.slice(0, slash)
  const path = slash === -1 ? '' : rest.slice(slash)
  if (!isTrustDomain(trustDomain)) throw bad('the trust domain may hold only lowercase letters, digits, dots, dashes and underscores (no port, no user info)')
  if (path !== '') {
    for (const seg of path.slice(1).split('/')) {
      if (seg === '' || seg === '.' || seg === '..' || !SEGMENT.test(seg)) throw bad('each path segment must be letters, digits, dots, dashes or underscores, and not empty, "." or ".." (no query or fragment)')
    }
  }
  return { trustDomain, path }
}

/** The SPIFFE ID of agent `name` in `trustDomain`: `spiffe://<trust-domain>/agent/<name>`. */
export function agentSpiffeId (trustDomain: string, name: string): string {
  const id = `spiffe://${trustDomain}/agent/${name}`
  if (name.includes('/')) throw new MeshError('MESH_ERR_IDENTITY_INVALID', `agent name "${name.slice(0, 100)}" must be one path segment (no slash)`)
  parseSpiffeId(id)
  return id
}
