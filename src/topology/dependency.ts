import { z } from 'zod'
import semver from 'semver'
import { MeshError } from '../errors.ts'

/**
 * Tag expression, as MCP Mesh users know it: `tag` required, `+tag` preferred (scores),
 * `-tag` excluded, a nested list is an OR group (at least one must match; members may be `+`/`-` free).
 */
export const TagExpressionSchema = z.array(z.union([
  z.string().min(1).max(65),
  z.array(z.string().min(1).max(64)).min(1),
])).max(32)

/** What a dependency asks for: a capability, a semver range, tags. */
export const ResolutionSpecSchema = z.object({
  capability: z.string().min(1).max(128),
  version: z.string().max(64).refine((r) => semver.validRange(r) !== null, 'version must be a semver range (for example ^1.2 or >=2)').optional(),
  tags: TagExpressionSchema.optional(),
  /**
   * Partner trust domains (registered entities) whose providers this dependency may use besides
   * its own domain's; none by default, so a partner cannot capture a capability by advertising it.
   */
  trustDomains: z.array(z.string().min(1).max(255)).max(16).optional(),
  /**
   * Only providers whose tool advertises `streaming` (it emits partial results, read with
   * `dependency.stream(args)`); others are rejected, and `meshctl explain` says so.
   */
  streaming: z.boolean().optional(),
  /**
   * Only providers whose tool definition (title, description, schemas, annotations) is the one
   * pinned for the capability: the first one resolved is pinned (trust on first use), a provider
   * advertising another is withheld until `meshctl pin approve` (see `src/proxy/pins.ts`).
   */
  pin: z.boolean().optional(),
})

/**
 * A dependency as written by users: a capability name, one spec, or an ordered list of specs
 * (the first that resolves wins: fallback, canary, shadow).
 */
export const DependencySpecSchema = z.union([
  z.string().min(1).max(128),
  ResolutionSpecSchema,
  z.array(z.union([z.string().min(1).max(128), ResolutionSpecSchema])).min(1).max(8),
])

/** One normalized spec. */
export type ResolutionSpec = z.infer<typeof ResolutionSpecSchema>
/** A dependency as users write it. */
export type DependencySpec = z.input<typeof DependencySpecSchema>

/** Turns any accepted form into an ordered list of specs; throws MESH_ERR_RESOLVE_INVALID_SPEC. */
export function normalizeDependency (spec: DependencySpec): ResolutionSpec[] {
  const parsed = DependencySpecSchema.safeParse(spec)
  if (!parsed.success) {
    throw new MeshError('MESH_ERR_RESOLVE_INVALID_SPEC', `invalid dependency spec: ${z.prettifyError(parsed.error)}`, { details: { issues: parsed.error.issues } })
  }
  const list = Array.isArray(parsed.data) ? parsed.data : [parsed.data]
  return list.map((s) => typeof s === 'string' ? { capability: s } : s)
}

/** One spec as words, for messages and `meshctl explain`: `capability weather, version ^1, tags eu +fast`. */
export function describeSpec (spec: ResolutionSpec): string {
  const parts = [`capability ${spec.capability}`]
  if (spec.version !== undefined) parts.push(`version ${spec.version}`)
  if (spec.tags !== undefined && spec.tags.length > 0) {
    parts.push(`tags ${spec.tags.map((t) => typeof t === 'string' ? t : `[${t.join(', ')}]`).join(' ')}`)
  }
  if (spec.trustDomains !== undefined && spec.trustDomains.length > 0) parts.push(`partners ${spec.trustDomains.join(' ')}`)
  if (spec.streaming === true) parts.push('streaming')
  if (spec.pin === true) parts.push('pinned definition')
  return parts.join(', ')
}
