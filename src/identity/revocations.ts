import { createHash, createPrivateKey, sign, verify, X509Certificate } from 'node:crypto'
import { readFile } from 'node:fs/promises'
import { join } from 'node:path'
import { z } from 'zod'
import { MeshError } from '../errors.ts'
import { parseSpiffeId } from './spiffe-id.ts'
import { certsOf, keyHashOf } from './tls.ts'
import { readJsonFolder, writeJsonRecord } from './json-folder.ts'
import { caPaths, checkKeyFileMode } from './ca-files.ts'

/**
 * Revoked identities: one agent's SPIFFE ID (every certificate naming it), or one certificate
 * (its key: what adverts endorse). Kept in `<home>/revoked/<digest>.json`, one file each, read
 * by every agent and bootstrap of the home and followed while they run (`TrustStore`). A
 * revocation signed by a CA of the identity's own trust domain also travels mesh-wide: members
 * exchange them in every sync, and each checks the signature against the bundle of that domain.
 */
export const RevocationSchema = z.object({
  spiffeId: z.string().min(1).max(2048),
  /** Set when one certificate is revoked: the SHA-256 of its public key, base64url. */
  keyHash: z.string().length(43).optional(),
  revokedAt: z.string().max(64),
  /** The signature of a CA of the identity's trust domain over `revocationPayload`, base64. */
  sig: z.string().max(1024).optional(),
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

/** The bytes a revocation's signature covers: a prefix of its own and every field. */
export function revocationPayload (r: Revocation): Buffer {
  return Buffer.from(`mcp-mesh revocation v1\0${r.spiffeId}\0${r.keyHash ?? ''}\0${r.revokedAt}`)
}

/** Its file name and its identity among revocations (two members name it alike). */
export function revocationDigest (r: Revocation): string {
  return createHash('sha256').update(`${r.spiffeId}#${r.keyHash ?? ''}`).digest('hex').slice(0, 32)
}

/** Whether a CA certificate of `bundlePem` signed `r` (so it may travel beyond its home). */
export function signedByBundle (r: Revocation, bundlePem: string): boolean {
  if (r.sig === undefined) return false
  const payload = revocationPayload(r)
  const sig = Buffer.from(r.sig, 'base64')
  return certsOf(bundlePem).some((ca) => {
    try {
      return ca.ca && verify(ca.publicKey.asymmetricKeyType === 'ec' ? 'sha256' : null, payload, ca.publicKey, sig)
    } catch {
      return false // a key type or signature Node cannot use is no signature
    }
  })
}

/** How `revoke` signs: the PEM key of a CA of the identity's trust domain, or the home's local CA when it has one. */
export interface RevokeOptions {
  now?: number
  caKeyPem?: string
}

/**
 * Revokes a SPIFFE ID, or the one certificate `certPem` (its key), for every agent of the home;
 * signed by the CA key given, or by the home's local CA of that trust domain, it spreads to the
 * whole mesh.
 */
export async function revoke (home: string, what: { spiffeId: string } | { certPem: string }, options: RevokeOptions = {}): Promise<Revocation> {
  const now = options.now ?? Date.now()
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
  const keyPem = options.caKeyPem ?? await localCaKey(home, parseSpiffeId(r.spiffeId).trustDomain)
  if (keyPem !== undefined) {
    let key
    try {
      key = createPrivateKey(keyPem)
    } catch (err) {
      throw new MeshError('MESH_ERR_IDENTITY_INVALID', `cannot sign the revocation: not a PEM private key (${(err as Error).message})`)
    }
    r.sig = sign(key.asymmetricKeyType === 'ec' ? 'sha256' : null, revocationPayload(r), key).toString('base64')
  }
  await writeJsonRecord(revokedDir(home), revocationDigest(r), r)
  return r
}

/** The key of the home's local CA of `trustDomain`, when there is one ("auto"). */
async function localCaKey (home: string, trustDomain: string): Promise<string | undefined> {
  const { key } = caPaths(home, trustDomain)
  try {
    await checkKeyFileMode(key)
    return await readFile(key, 'utf8')
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined
    throw err
  }
}

/** Writes a revocation learnt from the mesh into the home, so a restart keeps it before any sync. */
export async function keepRevocation (home: string, r: Revocation): Promise<void> {
  await writeJsonRecord(revokedDir(home), revocationDigest(r), r)
}

/** Whether an identity (its SPIFFE ID and key) is revoked by one of `list`. */
export function isRevoked (list: readonly Revocation[], spiffeId: string, keyHash: string | undefined): boolean {
  return list.some((r) => r.spiffeId === spiffeId && (r.keyHash === undefined || r.keyHash === keyHash))
}
