import { createHash, X509Certificate } from 'node:crypto'
import { join } from 'node:path'
import { z } from 'zod'
import { MeshError } from '../errors.ts'
import { parseSpiffeId } from './spiffe-id.ts'
import { keyHashOf } from './tls.ts'
import { readJsonFolder, writeJsonRecord } from './json-folder.ts'

/**
 * Revoked identities: one agent's SPIFFE ID (every certificate naming it), or one certificate
 * (its key: what adverts endorse). Kept in `<home>/revoked/<digest>.json`, one file each, read
 * by every agent and bootstrap of the home and followed while they run (`TrustStore`).
 */
export const RevocationSchema = z.object({
  spiffeId: z.string().min(1).max(2048),
  /** Set when one certificate is revoked: the SHA-256 of its public key, base64url. */
  keyHash: z.string().length(43).optional(),
  revokedAt: z.string(),
})
export type Revocation = z.infer<typeof RevocationSchema>

/** The folder of the revocations of a home. */
export function revokedDir (home: string): string {
  return join(home, 'revoked')
}

/** Every revocation of a home (a file that does not parse is skipped). */
export async function listRevocations (home: string): Promise<Revocation[]> {
  return (await readJsonFolder(revokedDir(home), RevocationSchema)).map((r) => r.record)
}

/** Revokes a SPIFFE ID, or the one certificate `certPem` (its key), for every agent of the home. */
export async function revoke (home: string, what: { spiffeId: string } | { certPem: string }, now = Date.now()): Promise<Revocation> {
  let r: Revocation
  if ('spiffeId' in what) {
    try {
      parseSpiffeId(what.spiffeId)
    } catch (err) {
      throw new MeshError('MESH_ERR_IDENTITY_INVALID', `cannot revoke "${what.spiffeId}": ${(err as Error).message}`)
    }
    r = { spiffeId: what.spiffeId, revokedAt: new Date(now).toISOString() }
  } else {
    let cert: X509Certificate
    try {
      cert = new X509Certificate(what.certPem)
    } catch (err) {
      throw new MeshError('MESH_ERR_IDENTITY_INVALID', `cannot revoke: not a PEM certificate (${(err as Error).message})`)
    }
    const uri = (cert.subjectAltName ?? '').split(', ').find((n) => n.startsWith('URI:spiffe://'))
    if (uri === undefined) throw new MeshError('MESH_ERR_IDENTITY_INVALID', 'cannot revoke: the certificate holds no SPIFFE ID')
    r = { spiffeId: uri.slice(4), keyHash: keyHashOf(cert.publicKey.export({ type: 'spki', format: 'der' })), revokedAt: new Date(now).toISOString() }
  }
  await writeJsonRecord(revokedDir(home), createHash('sha256').update(`${r.spiffeId}#${r.keyHash ?? ''}`).digest('hex').slice(0, 32), r)
  return r
}

/** Whether an identity (its SPIFFE ID and key) is revoked by one of `list`. */
export function isRevoked (list: readonly Revocation[], spiffeId: string, keyHash: string | undefined): boolean {
  return list.some((r) => r.spiffeId === spiffeId && (r.keyHash === undefined || r.keyHash === keyHash))
}
