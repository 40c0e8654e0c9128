import { z } from 'zod'
import { peerIdFromString } from '@libp2p/peer-id'
import { createPublicKey, verify } from 'node:crypto'
import type { KeyObject } from 'node:crypto'
import type { PrivateKey } from '@libp2p/interface'
import { AdvertSchema, AdvertLimits, NameSchema, PeerIdSchema } from '../topology/advert.ts'
import type { Advert } from '../topology/advert.ts'
import { MeshError } from '../errors.ts'

/** The signed message kinds that travel by gossip (and, for adverts and leaves, by sync). */
export const Kinds = { advert: 1, suspect: 2, leave: 3 } as const
/** A message kind. */
export type Kind = keyof typeof Kinds
const kindByCode = new Map<number, Kind>(Object.entries(Kinds).map(([k, v]) => [v, k as Kind]))

/** A suspicion: `from` could not reach `subject` at `incarnation`. Signed by `from`. */
export const SuspectSchema = z.object({
  v: z.number().int().min(1),
  mesh: NameSchema,
  subject: PeerIdSchema,
  incarnation: z.number().int().nonnegative(),
  from: PeerIdSchema,
  issuedAt: z.number().int().nonnegative(),
  /** Confirmations the subject can get: its neighbours but one, as it last told `from` (Replica.applySuspect). */
  k: z.number().int().min(1).max(32).optional(),
})
/** A leave: the subject itself says it is going. Signed only by its subject. */
export const LeaveSchema = z.object({
  v: z.number().int().min(1),
  mesh: NameSchema,
  peerId: PeerIdSchema,
  incarnation: z.number().int().nonnegative(),
  issuedAt: z.number().int().nonnegative(),
})
/** A validated suspicion. */
export type Suspect = z.infer<typeof SuspectSchema>
/** A validated leave. */
export type Leave = z.infer<typeof LeaveSchema>

/** A decoded, verified message. */
export type Decoded =
  | { kind: 'advert', payload: Advert, signer: string }
  | { kind: 'suspect', payload: Suspect, signer: string }
  | { kind: 'leave', payload: Leave, signer: string }

/** Why a message was dropped: stable names, counted per node (`stats.dropped`). */
export type DropReason = 'too-large' | 'malformed' | 'invalid' | 'too-many-tools' | 'signature' | 'mesh-mismatch' | 'unsupported-key' | 'too-old' | 'future' | 'quota' | 'unknown-sender' | 'member-cap' | 'resigned' | 'bad-endpoint' | 'untrusted'

const MAGIC = 0x4d // 'M'
const WIRE_VERSION = 1
const HEADER = 7 // magic, wire version, kind, payload length (uint32)
const SIG_BYTES = 64
const encoder = new TextEncoder()
const decoder = new TextDecoder('utf-8', { fatal: true })

/**
 * The bytes a signature covers: a prefix naming the message kind, the mesh and the wire version,
 * then the payload. So no signed message can be replayed as another kind or into another mesh.
 */
function signedBytes (kind: Kind, mesh: string, payload: Uint8Array): Uint8Array {
  const prefix = encoder.encode(`mcp-mesh/${kind}/v${WIRE_VERSION}/${mesh}\n`)
  const out = new Uint8Array(prefix.length + payload.length)
  out.set(prefix, 0)
  out.set(payload, prefix.length)
  return out
}

/** Signs and frames a message: magic, version, kind, length, JSON payload, Ed25519 signature. */
export async function encodeMessage (kind: Kind, payload: Advert | Suspect | Leave, mesh: string, key: PrivateKey): Promise<Uint8Array> {
  const body = encoder.encode(JSON.stringify(payload))
  const sig = await key.sign(signedBytes(kind, mesh, body))
  const out = new Uint8Array(HEADER + body.length + sig.length)
  const view = new DataView(out.buffer)
  out[0] = MAGIC
  out[1] = WIRE_VERSION
  out[2] = Kinds[kind]
  view.setUint32(3, body.length)
  out.set(body, HEADER)
  out.set(sig, HEADER + body.length)
  return out
}

const fail = (reason: DropReason, message: string): never => {
  throw new MeshError(reason === 'too-large' ? 'MESH_ERR_WIRE_TOO_LARGE' : reason === 'signature' || reason === 'unsupported-key' ? 'MESH_ERR_WIRE_SIGNATURE' : reason === 'mesh-mismatch' ? 'MESH_ERR_WIRE_MESH_MISMATCH' : reason === 'invalid' || reason === 'too-many-tools' ? 'MESH_ERR_ADVERT_INVALID' : 'MESH_ERR_WIRE_MALFORMED', message, { details: { reason } })
}

/** The drop reason carried by an error from `decodeMessage`. */
export function dropReason (err: unknown): DropReason {
  return (err instanceof MeshError ? err.details?.reason as DropReason | undefined : undefined) ?? 'malformed'
}

// Building a key for verification is not free (@libp2p/crypto makes a new one from JWK on every
// verify, about a third of the cost): keep one Node KeyObject per signer, in a bounded cache.
const SPKI_ED25519 = Buffer.from('302a300506032b6570032100', 'hex')
const keyCache = new Map<string, KeyObject | null>()
function publicKeyOf (peerId: string): KeyObject | null {
  let key = keyCache.get(peerId)
  if (key === undefined) {
    try {
      const id = peerIdFromString(peerId)
      key = id.type === 'Ed25519' ? createPublicKey({ key: Buffer.concat([SPKI_ED25519, id.publicKey.raw]), format: 'der', type: 'spki' }) : null
    } catch {
      key = null
    }
    if (keyCache.size >= 10_000) keyCache.delete(keyCache.keys().next().value!)
    keyCache.set(peerId, key)
  }
  return key
}

/**
 * Decodes and verifies one message for `mesh`: strict on size, tolerant of unknown fields.
 * Throws a MeshError whose `details.reason` is the DropReason.
 */
export async function decodeMessage (bytes: Uint8Array, mesh: string, maxBytes = AdvertLimits.maxMessageBytes): Promise<Decoded> {
  if (bytes.length > maxBytes) fail('too-large', `message of ${bytes.length} bytes exceeds ${maxBytes}`)
  if (bytes.length < HEADER + SIG_BYTES || bytes[0] !== MAGIC) fail('malformed', 'not a mesh message')
  if (bytes[1] !== WIRE_VERSION) fail('malformed', `unsupported wire version ${bytes[1]}`)
  const kind = kindByCode.get(bytes[2]) ?? fail('malformed', `unknown message kind ${bytes[2]}`)
  const len = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength).getUint32(3)
  if (HEADER + len + SIG_BYTES !== bytes.length) fail('malformed', 'length field does not match the message')
  const body = bytes.subarray(HEADER, HEADER + len)
  const sig = bytes.subarray(HEADER + len)
  let raw: unknown
  try {
    raw = JSON.parse(decoder.decode(body))
  } catch {
    fail('malformed', 'payload is not UTF-8 JSON')
  }
  const schema = kind === 'advert' ? AdvertSchema : kind === 'suspect' ? SuspectSchema : LeaveSchema
  const parsed = schema.safeParse(raw)
  if (!parsed.success) {
    const tooMany = parsed.error.issues.some((i) => i.code === 'too_big' && i.path.length === 1 && i.path[0] === 'tools')
    fail(tooMany ? 'too-many-tools' : 'invalid', `invalid ${kind}: ${z.prettifyError(parsed.error)}`)
  }
  const payload = parsed.data as Advert | Suspect | Leave
  if (payload.mesh !== mesh) fail('mesh-mismatch', `message of mesh "${payload.mesh}" on mesh "${mesh}"`)
  const signer = kind === 'suspect' ? (payload as Suspect).from : (payload as Advert | Leave).peerId
  const key = publicKeyOf(signer) ?? fail('unsupported-key', `signer ${signer} is not an Ed25519 peer ID`)
  if (!verify(null, signedBytes(kind, mesh, body), key, sig)) fail('signature', `signature does not verify for ${signer}`)
  return { kind, payload, signer } as Decoded
}
