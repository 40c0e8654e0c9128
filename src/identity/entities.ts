import { X509Certificate } from 'node:crypto'
import { rm } from 'node:fs/promises'
import { join } from 'node:path'
import { z } from 'zod'
import { MeshError } from '../errors.ts'
import { isTrustDomain } from './spiffe-id.ts'
import { readJsonFolder, writeJsonRecord } from './json-folder.ts'

/**
 * Federation: the other organisations ("entities") whose agents this mesh trusts, each a trust
 * domain and the CA certificates that vouch for it. Kept in `<home>/entities/<name>.json`, one
 * file per entity, so every agent of the host reads the same list and picks up changes.
 */

/** An entity's file. */
export const EntitySchema = z.object({
  name: z.string().regex(/^[a-z0-9][a-z0-9._-]{0,62}$/),
  trustDomain: z.string().refine(isTrustDomain, 'not a trust domain'),
  /** The CA certificates (PEM) of its trust domain: its bundle. */
  bundlePem: z.string().min(1),
  registeredAt: z.string(),
})
export type Entity = z.infer<typeof EntitySchema>

/** The folder of the entities of a home. */
export function entitiesDir (home: string): string {
  return join(home, 'entities')
}

/** Every registered entity (a file that does not parse is skipped: it trusts nobody). */
export async function listEntities (home: string): Promise<Entity[]> {
  return (await readJsonFolder(entitiesDir(home), EntitySchema)).filter((e) => e.file === `${e.record.name}.json`).map((e) => e.record)
}

const refuse = (message: string, details: Record<string, unknown> = {}): never => {
  throw new MeshError('MESH_ERR_ENTITY_INVALID', message, { details })
}

/**
 * Registers an entity: `caPem` must hold CA certificates (the trust domain is taken from their
 * SPIFFE URI SAN when `trustDomain` is not given). Refused: our own trust domain, a domain or a
 * name already registered, a certificate that is not a CA.
 */
export async function registerEntity (home: string, own: string, init: { name: string, caPem: string, trustDomain?: string }, now = Date.now()): Promise<Entity> {
  if (!EntitySchema.shape.name.safeParse(init.name).success) refuse(`"${init.name}" is not an entity name: lowercase letters, digits, ".", "_" and "-", up to 63 characters`)
  const blocks = init.caPem.match(/-----BEGIN CERTIFICATE-----[^-]+-----END CERTIFICATE-----/g) ?? []
  if (blocks.length === 0) refuse('the CA file holds no PEM certificate')
  const certs = blocks.map((b) => {
    try {
      return new X509Certificate(b)
    } catch (err) {
      return refuse(`a certificate of the CA file does not parse: ${(err as Error).message}`)
    }
  })
  const notCa = certs.find((c) => !c.ca)
  if (notCa !== undefined) refuse(`${notCa.subject.replace(/\n/g, ', ')} is not a CA certificate: register the CA that issues the partner's SVIDs`)
  const named = certs.flatMap((c) => (c.subjectAltName ?? '').split(', ')).filter((n) => n.startsWith('URI:spiffe://')).map((n) => new URL(n.slice(4)).hostname)
  const trustDomain = init.trustDomain ?? named[0] ?? refuse('the CA certificate names no trust domain (no spiffe:// URI SAN): pass --trust-domain')
  if (!isTrustDomain(trustDomain)) refuse(`"${trustDomain}" is not a trust domain`)
  if (trustDomain === own) refuse(`${trustDomain} is this mesh's own trust domain: its bundle comes from the identity provider, not from an entity`, { trustDomain })
  const existing = await listEntities(home)
  const byName = existing.find((e) => e.name === init.name)
  if (byName !== undefined) refuse(`an entity named ${init.name} is registered already (trust domain ${byName.trustDomain}): revoke it first to replace it`, { name: init.name })
  const byDomain = existing.find((e) => e.trustDomain === trustDomain)
  if (byDomain !== undefined) refuse(`the trust domain ${trustDomain} is registered already, as ${byDomain.name}`, { trustDomain, name: byDomain.name })
  const entity: Entity = { name: init.name, trustDomain, bundlePem: blocks.join('\n') + '\n', registeredAt: new Date(now).toISOString() }
  await writeJsonRecord(entitiesDir(home), init.name, entity)
  return entity
}

/** Revokes (removes) an entity; returns it, or throws when there is none of that name. */
export async function revokeEntity (home: string, name: string): Promise<Entity> {
  const e = (await listEntities(home)).find((x) => x.name === name)
  if (e === undefined) return refuse(`no entity named ${name} is registered (meshctl entity list)`, { name })
  await rm(join(entitiesDir(home), `${name}.json`), { force: true })
  return e
}
