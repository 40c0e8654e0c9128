import { readFile } from 'node:fs/promises'
import { z } from 'zod'
import { MeshError, isMeshError } from '../errors.ts'
import { NameSchema } from '../topology/advert.ts'
import { TagExpressionSchema } from '../topology/dependency.ts'
import { createResolver } from '../topology/resolver.ts'
import type { GatewayFilter } from './tools.ts'

/** A tool set's name: it is a URL path segment (`/mcp/<name>`), so no `.` or `..` alone. */
const SetNameSchema = z.string().max(64).regex(/^[A-Za-z0-9][A-Za-z0-9._-]*$/, 'a letter or digit, then letters, digits, dot, dash and underscore')

/** Tags in the resolver's syntax; what the schema lets through but means nothing (`+` alone) is refused here, not at the first list. */
const TagsSchema = TagExpressionSchema.superRefine((tags, ctx) => {
  try {
    createResolver().resolve([], { capability: 'check', tags })
  } catch (err) {
    if (!isMeshError(err)) throw err
    ctx.addIssue({ code: 'custom', message: err.message })
  }
})

/** What one tool set shows: the capabilities (all when absent or empty) and the tags providers must match. */
export const ToolSetSchema = z.strictObject({
  capabilities: z.array(NameSchema).max(1_000).optional(),
  tags: TagsSchema.optional(),
})

/**
 * The gateway's config file (`meshctl gateway --config <file>`): named tool sets, and defaults for
 * the command's flags (a flag given on the command line wins). Strict: an unknown key is a typo.
 */
export const GatewayConfigSchema = z.strictObject({
  /** Named tool sets: `--tool-set <name>` over stdio; over HTTP each is served at `/mcp/<name>`. */
  toolSets: z.record(SetNameSchema, ToolSetSchema).default({}),
  /** `--capability`: what `/mcp` (or stdio without a set) shows. */
  capabilities: z.array(NameSchema).max(1_000).optional(),
  /** `--tags`. */
  tags: TagsSchema.optional(),
  /** `--call-timeout`, in ms. */
  callTimeoutMs: z.number().int().positive().optional(),
  /** `--bootstrap`. */
  bootstrap: z.array(z.string().min(1)).optional(),
  /** `--mesh`. */
  mesh: NameSchema.optional(),
})

/** A validated gateway config. */
export type GatewayConfig = z.infer<typeof GatewayConfigSchema>

/** The filter a tool set stands for. */
export function toolSetFilter (set: z.infer<typeof ToolSetSchema>): GatewayFilter {
  return { ...(set.capabilities === undefined ? {} : { capabilities: set.capabilities }), ...(set.tags === undefined ? {} : { tags: set.tags }) }
}

/**
 * Validates a config object read from `file`; throws `MESH_ERR_GATEWAY_CONFIG` naming the file
 * and every field at fault (`details.fields`, with unknown keys named themselves).
 */
export function parseGatewayConfig (input: unknown, file: string): GatewayConfig {
  const parsed = GatewayConfigSchema.safeParse(input)
  if (parsed.success) return parsed.data
  const fields = parsed.error.issues.flatMap((i) => i.code === 'unrecognized_keys'
    ? i.keys.map((k) => [...i.path, k].join('.'))
    : [i.path.join('.') || '(the file)'])
  throw new MeshError('MESH_ERR_GATEWAY_CONFIG', `invalid gateway config ${file}: ${z.prettifyError(parsed.error)}`, { details: { file, fields, issues: parsed.error.issues } })
}

/** Reads and validates the config file; unreadable or not JSON: `MESH_ERR_GATEWAY_CONFIG` too. */
export async function loadGatewayConfig (file: string, signal?: AbortSignal): Promise<GatewayConfig> {
  let text: string
  try {
    text = await readFile(file, { encoding: 'utf8', ...(signal === undefined ? {} : { signal }) })
  } catch (err) {
    throw new MeshError('MESH_ERR_GATEWAY_CONFIG', `cannot read the gateway config ${file}: ${(err as Error).message}`, { cause: err, details: { file, fields: [] } })
  }
  let json: unknown
  try {
    json = JSON.parse(text)
  } catch (err) {
    throw new MeshError('MESH_ERR_GATEWAY_CONFIG', `the gateway config ${file} is not JSON: ${(err as Error).message}`, { cause: err, details: { file, fields: [] } })
  }
  return parseGatewayConfig(json, file)
}
