// Pinning tool definitions against silent changes (the "rug pull"): what a definition is, its
// canonical digest, and the pin file as data with the pure operations on it. No I/O here: the file
// and the live pins of a running gateway or agent are `src/proxy/pins.ts`.
import { hash } from 'node:crypto'
import { z } from 'zod'
import { MeshError } from '../errors.ts'
import type { ToolAdvert } from './advert.ts'

/** The fields of a tool definition a host's model reads, hence the ones pinned. */
export const DEFINITION_FIELDS = ['title', 'description', 'inputSchema', 'outputSchema', 'annotations'] as const
/** One pinned field. */
export type DefinitionField = typeof DEFINITION_FIELDS[number]

const json = z.record(z.string(), z.unknown())
/** A tool definition as pinned: what a host sees of a tool besides its name (the title apart from the other annotations). */
export const ToolDefinitionSchema = z.object({
  title: z.string().optional(),
  description: z.string().optional(),
  inputSchema: json.optional(),
  outputSchema: json.optional(),
  annotations: json.optional(),
}).strict()
/** A tool definition as pinned. */
export type ToolDefinition = z.infer<typeof ToolDefinitionSchema>

/** The definition of an advertised tool: its title apart, other annotations only when there are some. */
export function definitionOf (tool: ToolAdvert): ToolDefinition {
  const { title, ...hints } = tool.annotations ?? {}
  return {
    ...(title === undefined ? {} : { title }),
    ...(tool.description === undefined ? {} : { description: tool.description }),
    ...(tool.inputSchema === undefined ? {} : { inputSchema: tool.inputSchema }),
    ...(tool.outputSchema === undefined ? {} : { outputSchema: tool.outputSchema }),
    ...(Object.keys(hints).length === 0 ? {} : { annotations: hints }),
  }
}

/**
 * JSON with every object's keys sorted and undefined members left out, arrays kept in order: two
 * values equal as data give the same text, whatever order their keys were written in.
 */
export function canonicalJson (value: unknown): string {
  if (Array.isArray(value)) return `[${value.map((v) => canonicalJson(v ?? null)).join(',')}]`
  if (value !== null && typeof value === 'object') {
    const entries = Object.entries(value).filter(([, v]) => v !== undefined).sort(([a], [b]) => a < b ? -1 : a > b ? 1 : 0)
    return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${canonicalJson(v)}`).join(',')}}`
  }
  return JSON.stringify(value) ?? 'null'
}

/** SHA-256 (hex) of a definition's canonical JSON. */
export function definitionDigest (definition: ToolDefinition): string {
  return hash('sha256', canonicalJson(definition), 'hex')
}

// Advert objects are immutable and replaced whole by a newer version: one digest per tool advert.
const digests = new WeakMap<ToolAdvert, string>()

/** The digest of an advertised tool's definition, computed once per advert version. */
export function toolDigest (tool: ToolAdvert): string {
  let d = digests.get(tool)
  if (d === undefined) digests.set(tool, d = definitionDigest(definitionOf(tool)))
  return d
}

/** The fields in which two definitions differ, in `DEFINITION_FIELDS` order. */
export function changedFields (a: ToolDefinition, b: ToolDefinition): DefinitionField[] {
  return DEFINITION_FIELDS.filter((f) => canonicalJson(a[f] ?? null) !== canonicalJson(b[f] ?? null))
}

/** A digest as people read it: its first 12 hex digits. */
export function shortDigest (digest: string): string {
  return digest.slice(0, 12)
}

/** Why the resolver withholds a provider from a pinned dependency: its definition is not the pinned one. */
export interface PinVerdict {
  capability: string
  /** The pinned digest. */
  pinned: string
  /** The provider's digest. */
  digest: string
  changed: DefinitionField[]
  /** The provider's SPIFFE ID, from its signed advert (none with TLS off). */
  spiffeId?: string
  /** The command that accepts the change. */
  approve: string
}

/** A pinned provider: which identity's signed advert the definition came from. */
export const PinProviderSchema = z.object({
  agent: z.string().max(128),
  peerId: z.string().max(128),
  spiffeId: z.string().max(2048).optional(),
}).strict()
/** A provider as a pin names it. */
export type PinProvider = z.infer<typeof PinProviderSchema>

const digest = z.string().regex(/^[0-9a-f]{64}$/, 'a SHA-256 in hex')
const when = z.iso.datetime()

/** One capability's pin: the definition shown to hosts, and how it came to be pinned. */
export const PinSchema = z.object({
  digest,
  definition: ToolDefinitionSchema,
  /** The provider it was first seen from (on first use) or approved from. */
  from: PinProviderSchema,
  /** `first-use`: trusted the first time it was seen; `approved`: by `meshctl pin approve`. */
  how: z.enum(['first-use', 'approved']),
  since: when,
}).strict()
/** One capability's pin. */
export type Pin = z.infer<typeof PinSchema>

/** Providers remembered per pending change, and changes per capability: a member cannot grow the file without end. */
export const MAX_PENDING_PROVIDERS = 8
export const MAX_PENDING_CHANGES = 16

/** A definition that differs from the pin, waiting for `meshctl pin approve`. */
export const PendingChangeSchema = z.object({
  digest,
  definition: ToolDefinitionSchema,
  /** The fields that differ from the pin (when it was seen, or at the last approval). */
  changed: z.array(z.enum(DEFINITION_FIELDS)),
  /** Who advertises it: each a signed advert's identity. */
  providers: z.array(PinProviderSchema).min(1).max(MAX_PENDING_PROVIDERS),
  /** When it was first seen. */
  seen: when,
}).strict()
/** A change waiting for approval. */
export type PendingChange = z.infer<typeof PendingChangeSchema>

/** The pin file: per capability, its pin and the changes that wait. */
export const PinFileSchema = z.object({
  v: z.literal(1),
  pins: z.record(z.string(), PinSchema),
  pending: z.record(z.string(), z.array(PendingChangeSchema).max(MAX_PENDING_CHANGES)),
}).strict()
/** The pin file's content. */
export type PinFile = z.infer<typeof PinFileSchema>

/** A change to the pin file: applied to what is on disk at the time of writing, so concurrent writers merge. */
export type PinOp = (file: PinFile) => PinFile

/** A file with nothing pinned. */
export function emptyPins (): PinFile {
  return { v: 1, pins: {}, pending: {} }
}

/** Pins `definition` for `capability` (trust on first use); nothing when it has a pin already (another writer's wins). */
export function pinFirst (capability: string, definition: ToolDefinition, from: PinProvider, at: number): PinOp {
  return (f) => {
    if (f.pins[capability] !== undefined) return f
    const pin: Pin = { digest: definitionDigest(definition), definition, from, how: 'first-use', since: new Date(at).toISOString() }
    return { ...f, pins: { ...f.pins, [capability]: pin } }
  }
}

/**
 * Records that `from` advertises `definition`, which differs from the pin of `capability`. Nothing
 * when there is no pin (it was forgotten) or the definition is the pinned one (approved meanwhile);
 * a change seen before gains the provider. Past the caps the oldest change is dropped.
 */
export function notePending (capability: string, definition: ToolDefinition, from: PinProvider, at: number): PinOp {
  const d = definitionDigest(definition)
  return (f) => {
    const pin = f.pins[capability]
    if (pin === undefined || pin.digest === d) return f
    const changes = f.pending[capability] ?? []
    const known = changes.find((c) => c.digest === d)
    let next: PendingChange[]
    if (known !== undefined) {
      if (known.providers.some((p) => p.peerId === from.peerId && p.spiffeId === from.spiffeId)) return f
      const providers = [...known.providers.filter((p) => p.peerId !== from.peerId), from].slice(-MAX_PENDING_PROVIDERS)
      next = changes.map((c) => c === known ? { ...c, providers } : c)
    } else {
      next = [...changes, { digest: d, definition, changed: changedFields(pin.definition, definition), providers: [from], seen: new Date(at).toISOString() }].slice(-MAX_PENDING_CHANGES)
    }
    return { ...f, pending: { ...f.pending, [capability]: next } }
  }
}

/** The pending change of `capability` that `digestPrefix` names, or its only one; throws MESH_ERR_PIN_NOT_PENDING. */
export function pendingChange (f: PinFile, capability: string, digestPrefix?: string): PendingChange {
  const all = f.pending[capability] ?? []
  const matching = digestPrefix === undefined ? all : all.filter((c) => c.digest.startsWith(digestPrefix.toLowerCase()))
  if (matching.length === 1) return matching[0]
  const waiting = all.map((c) => shortDigest(c.digest))
  const message = all.length === 0
    ? `no change of ${capability} waits for approval${f.pins[capability] === undefined ? ` (nothing is pinned for ${capability})` : ''}`
    : matching.length === 0
      ? `no change of ${capability} has a digest starting with ${digestPrefix}: ${waiting.join(', ')} wait`
      : `${matching.length} changes of ${capability} wait (${matching.map((c) => shortDigest(c.digest)).join(', ')}): name one with --digest <prefix>`
  throw new MeshError('MESH_ERR_PIN_NOT_PENDING', message, { details: { capability, waiting } })
}

/**
 * Accepts a pending change: it becomes the pin; the changes still waiting are compared with it
 * anew, and any equal to it dropped. Throws MESH_ERR_PIN_NOT_PENDING when none (or several) match.
 */
export function approveChange (capability: string, digestPrefix: string | undefined, at: number): PinOp {
  return (f) => {
    const change = pendingChange(f, capability, digestPrefix)
    const pin: Pin = { digest: change.digest, definition: change.definition, from: change.providers[change.providers.length - 1], how: 'approved', since: new Date(at).toISOString() }
    const rest = (f.pending[capability] ?? []).filter((c) => c.digest !== change.digest).map((c) => ({ ...c, changed: changedFields(pin.definition, c.definition) }))
    const { [capability]: _dropped, ...pending } = f.pending
    return { ...f, pins: { ...f.pins, [capability]: pin }, pending: rest.length === 0 ? pending : { ...pending, [capability]: rest } }
  }
}

/** Drops the pin of `capability` and its pending changes: the next definition seen is trusted on first use. */
export function forgetPin (capability: string): PinOp {
  return (f) => {
    if (f.pins[capability] === undefined && f.pending[capability] === undefined) {
      throw new MeshError('MESH_ERR_PIN_NOT_PENDING', `nothing is pinned for ${capability}`, { details: { capability, waiting: [] } })
    }
    const { [capability]: _pin, ...pins } = f.pins
    const { [capability]: _changes, ...pending } = f.pending
    return { ...f, pins, pending }
  }
}
