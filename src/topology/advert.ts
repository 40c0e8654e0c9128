import { z } from 'zod'
import semver from 'semver'
import { parseSpiffeId } from '../identity/spiffe-id.ts'

/** The advert schema version this code writes. Higher versions are read tolerantly. */
export const ADVERT_SCHEMA_VERSION = 1

/**
 * Hard limits on what one advert may carry. A message over any of them is dropped before it is
 * forwarded, so one bad agent cannot make every replica grow.
 */
export const AdvertLimits = {
  /** Bytes of one encoded gossip message (envelope included). */
  maxMessageBytes: 64 * 1024,
  maxTools: 64,
  maxTagsPerTool: 32,
  maxTagLength: 64,
  maxNameLength: 128,
  maxAddrs: 16,
  maxAddrLength: 256,
  maxDependencies: 64,
  maxDescriptionLength: 2048,
  /** Bytes of one tool's JSON schema (input or output) once serialized. */
  maxSchemaBytes: 16 * 1024,
} as const

// Every string another member's terminal or log may print is restricted to what it needs: no
// control characters (escape sequences would reach `meshctl list` and the logs), no spaces.
/** Agent, tool, capability and mesh names: MCP's tool-name alphabet. */
const NAME = /^[A-Za-z0-9._-]+$/
/** Tags: a name alphabet plus `:`, `=`, `/` and `@` (`region=eu`, `team/x`); never a leading + or -. */
const TAG = /^[A-Za-z0-9._:=/@][A-Za-z0-9._:=/@+-]*$/
/** Printable ASCII without spaces: multiaddrs, peer IDs, URLs, versions, roles. */
const TOKEN = /^[\x21-\x7e]+$/
/** Free text (descriptions): any character but control characters, except tab and newline. */
const TEXT = /^[^\x00-\x08\x0b-\x1f\x7f-\x9f]*$/

const name = z.string().min(1).max(AdvertLimits.maxNameLength).regex(NAME, 'letters, digits, dot, dash and underscore only')
const token = (max: number): z.ZodString => z.string().min(1).max(max).regex(TOKEN, 'printable ASCII without spaces')
/** A peer ID as it travels in signed messages (checked against the signature separately). */
export const PeerIdSchema = token(128)
/** A mesh, agent, tool or capability name. */
export const NameSchema = name

const tag = z.string().min(1).max(AdvertLimits.maxTagLength).regex(TAG, 'letters, digits and . _ : = / @ + -, with no leading + or -')
/** A zone name (`eu-west-1a`, `rack-7`, `region=eu`): the tag alphabet. */
export const ZoneSchema = tag
const jsonSchema = z.record(z.string(), z.unknown()).refine(
  (s) => JSON.stringify(s).length <= AdvertLimits.maxSchemaBytes,
  `a tool schema is at most ${AdvertLimits.maxSchemaBytes} bytes`,
)

/**
 * MCP's tool annotations, as hints from the provider: they are advertised and served in
 * `tools/list`, and callers read `readOnlyHint` and `idempotentHint` to decide what is safe to
 * send again (see the proxy). Unknown hints (from a newer MCP) are ignored.
 */
export const ToolAnnotationsSchema = z.object({
  title: z.string().max(AdvertLimits.maxNameLength * 2).regex(TEXT, 'no control characters but tab and newline').optional(),
  readOnlyHint: z.boolean().optional(),
  destructiveHint: z.boolean().optional(),
  idempotentHint: z.boolean().optional(),
  openWorldHint: z.boolean().optional(),
})

/** One tool an agent offers. Unknown fields (from a newer version) are ignored, not fatal. */
export const ToolAdvertSchema = z.object({
  name,
  capability: name,
  version: token(64).refine((v) => semver.valid(v) !== null, 'version must be semver (for example 1.2.0)'),
  tags: z.array(tag).max(AdvertLimits.maxTagsPerTool).default([]),
  description: z.string().max(AdvertLimits.maxDescriptionLength).regex(TEXT, 'no control characters but tab and newline').optional(),
  inputSchema: jsonSchema.optional(),
  outputSchema: jsonSchema.optional(),
  annotations: ToolAnnotationsSchema.optional(),
  /**
   * Call options the provider recommends for its tool (a slow tool's timeout, retries of a flaky
   * one, when to hedge): they stand in for a caller's node-wide defaults; its own options per
   * dependency and per call win.
   */
  defaults: z.object({
    timeoutMs: z.number().int().positive().max(3_600_000).optional(),
    retries: z.number().int().min(0).max(5).optional(),
    hedgeAfterMs: z.number().int().positive().max(600_000).optional(),
  }).optional(),
  /**
   * The tool streams partial results before its final one (`ctx.emit`): a dependency declared
   * `streaming: true` resolves only such tools. Absent in adverts of older agents: not streaming.
   */
  streaming: z.boolean().optional(),
})

/** A dependency an agent declared (informational: who needs what, for `meshctl`). */
export const DependencyAdvertSchema = z.object({
  capability: name,
  version: token(64).optional(),
})

/**
 * The replica's record: what one agent instance offers and where to reach it.
 * Signed end to end by the agent's libp2p key (see `gossip/codec.ts`).
 * `(incarnation, seq)` orders adverts of one peer: the incarnation is the start time (or higher,
 * after a refutation), the sequence grows within an incarnation.
 */
export const AdvertSchema = z.object({
  v: z.number().int().min(1),
  mesh: name,
  name,
  /** `agent` offers tools; `bootstrap` only opens the door. Unknown roles read as `agent`. */
  role: token(32).default('agent'),
  peerId: PeerIdSchema,
  incarnation: z.number().int().nonnegative(),
  seq: z.number().int().nonnegative(),
  issuedAt: z.number().int().nonnegative(),
  /** Where the agent runs (`eu-west-1a`, a rack, a region): callers prefer providers of their own zone. */
  zone: ZoneSchema.optional(),
  /** `draining` providers are kept in the replica but not chosen for new calls. */
  status: token(32).default('alive'),
  /** libp2p multiaddrs where peers can dial this agent (the advertised, not the bind, address). */
  addrs: z.array(token(AdvertLimits.maxAddrLength)).max(AdvertLimits.maxAddrs),
  /** The MCP endpoint URL (filled in when the agent serves calls). */
  endpoint: token(512).optional(),
  /**
   * The endpoint's TLS identity, endorsed by the libp2p key that signs this advert: callers
   * accept a provider only with this SPIFFE ID and this key. Renewals publish a new advert.
   */
  identity: z.object({
    /** SPIFFE ID (the SVID's one URI SAN). */
    id: token(2048).refine((id) => { try { parseSpiffeId(id); return true } catch { return false } }, 'a SPIFFE ID: spiffe://<trust-domain>/<path>, lowercase trust domain, no empty, "." or ".." segment'),
    /** SHA-256 of the SVID's SubjectPublicKeyInfo (DER), base64url. */
    key: z.string().regex(/^[A-Za-z0-9_-]{43}$/, 'a SHA-256 in base64url'),
    /** When the SVID expires (ms since the epoch). */
    exp: z.number().int().nonnegative(),
    /**
     * The SVID and the intermediates it was issued through (DER, base64, leaf first): every
     * member checks it leads to a CA of a domain it trusts, for adverts relayed by others too.
     */
    chain: z.array(z.string().max(8_192)).min(1).max(4).optional(),
  }).optional(),
  tools: z.array(ToolAdvertSchema).max(AdvertLimits.maxTools),
  dependencies: z.array(DependencyAdvertSchema).max(AdvertLimits.maxDependencies).default([]),
})

/** A validated advert. */
export type Advert = z.infer<typeof AdvertSchema>
/** One tool in an advert. */
export type ToolAdvert = z.infer<typeof ToolAdvertSchema>
/** MCP's tool annotations. */
export type ToolAnnotations = z.infer<typeof ToolAnnotationsSchema>

/**
 * Whether a call of this tool may be sent again after it reached a provider: MCP's read-only or
 * idempotent hint (a read-only tool changes nothing, so running it twice is harmless).
 */
export function retrySafe (tool: ToolAdvert): boolean {
  return tool.annotations?.readOnlyHint === true || tool.annotations?.idempotentHint === true
}
/** What an agent puts in an advert before the mesh stamps peer ID, mesh, incarnation and sequence. */
export type AdvertInput = z.input<typeof AdvertSchema>

/** Liveness of a member as this replica sees it. */
export type Liveness = 'alive' | 'suspect' | 'dead' | 'left'

/** One member of the topology as the resolver and `meshctl` see it. */
export interface Member {
  readonly advert: Advert
  readonly liveness: Liveness
}

/** Compares two adverts of the same peer: positive when `a` is newer. */
export function compareVersions (a: { incarnation: number, seq: number }, b: { incarnation: number, seq: number }): number {
  return a.incarnation !== b.incarnation ? a.incarnation - b.incarnation : a.seq - b.seq
}
