import { isIP } from 'node:net'
import type { PrivateKey } from '@libp2p/interface'
import { MeshError } from '../errors.ts'
import { LIBP2P_EXTENSION_OID, libp2pExtensionValue, peerIdFromLibp2pExtension } from './libp2p-extension.ts'
import type { LocalCa } from './local-ca.ts'
import type { IdentityFacts } from './provider.ts'
import { agentSpiffeId, DEFAULT_SVID_TTL_MS, parseSpiffeId } from './spiffe-id.ts'
import { generateKeys, privateKeyPem, serialNumber, x509 } from './x509.ts'

export { DEFAULT_SVID_TTL_MS }

/** An X.509-SVID with its private key and the trust bundle that verifies it, all PEM. */
export interface IssuedSvid {
  spiffeId: string
  /** The leaf certificate. */
  certPem: string
  /** Its PKCS #8 private key: keep it 0600. */
  keyPem: string
  /** The CA certificates of its trust domain. */
  bundlePem: string
  notAfter: Date
}

/** What an SVID is issued for. */
export interface SvidRequest {
  /** Agent name: the SPIFFE ID is `spiffe://<trust-domain>/agent/<name>`. */
  name: string
  /** Host names and IPs callers reach the agent by (DNS and IP SANs). */
  hosts: string[]
  ttlMs?: number
  /** The agent's libp2p key: it endorses the SVID's key in the libp2p TLS extension. */
  libp2pKey?: PrivateKey
  /** Now, in ms (tests issue certificates in the past). */
  now?: number
}

/** Issues an X.509-SVID from the local CA, by the SPIFFE rules (see `checkSvid`). */
export async function issueSvid (ca: LocalCa, req: SvidRequest): Promise<IssuedSvid> {
  const spiffeId = agentSpiffeId(ca.trustDomain, req.name)
  const keys = await generateKeys()
  const now = req.now ?? Date.now()
  const notAfter = new Date(now + (req.ttlMs ?? DEFAULT_SVID_TTL_MS))
  const extensions: x509.Extension[] = [
    new x509.BasicConstraintsExtension(false, undefined, true),
    new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true),
    new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.serverAuth, x509.ExtendedKeyUsage.clientAuth]),
    new x509.SubjectAlternativeNameExtension([
      { type: 'url', value: spiffeId },
      ...req.hosts.map((h) => ({ type: isIP(h) === 0 ? 'dns' as const : 'ip' as const, value: h })),
    ]),
    await x509.SubjectKeyIdentifierExtension.create(keys.publicKey),
    await x509.AuthorityKeyIdentifierExtension.create(ca.certificate),
  ]
  if (req.libp2pKey !== undefined) extensions.push(new x509.Extension(LIBP2P_EXTENSION_OID, false, await libp2pExtensionValue(req.libp2pKey, keys.publicKey)))
  const cert = await ca.sign({
    serialNumber: serialNumber(),
    subject: `O=mcp-mesh, CN=${req.name}`,
    // A minute back: a peer whose clock is a little behind still accepts it.
    notBefore: new Date(now - 60_000),
    notAfter,
    publicKey: keys.publicKey,
    extensions,
  })
  return { spiffeId, certPem: cert.toString('pem') + '\n', keyPem: await privateKeyPem(keys.privateKey), bundlePem: ca.pem + '\n', notAfter }
}

/** What `checkSvid` read from a valid SVID: an identity's facts (`IdentityFacts`). */
export type SvidFacts = IdentityFacts

/**
 * Checks a leaf certificate against the SPIFFE X.509-SVID rules and the mesh's own: exactly one
 * URI SAN holding a SPIFFE ID with a path; not a CA; key usage critical with digitalSignature and
 * without keyCertSign or cRLSign; extended key usage with serverAuth and clientAuth (a mesh agent
 * both serves and calls); a libp2p extension, when present, whose signature verifies. The chain
 * and the validity period are TLS's to check. Throws `MESH_ERR_IDENTITY_INVALID` naming every rule broken.
 */
export async function checkSvid (cert: x509.X509Certificate): Promise<SvidFacts> {
  const broken: string[] = []
  const san = cert.getExtension(x509.SubjectAlternativeNameExtension)
  const uris = san?.names.items.filter((n) => n.type === 'url').map((n) => n.value) ?? []
  let id: { trustDomain: string, path: string } | undefined
  if (uris.length !== 1) broken.push(`it must hold exactly one URI SAN, not ${uris.length}`)
  else {
    try {
      id = parseSpiffeId(uris[0])
      if (id.path === '') broken.push('the SPIFFE ID of a leaf must have a path')
    } catch (err) {
      broken.push((err as Error).message)
    }
  }
  const bc = cert.getExtension(x509.BasicConstraintsExtension)
  if (bc?.ca === true) broken.push('a leaf must not be a CA (basic constraints cA must be false)')
  const ku = cert.getExtension(x509.KeyUsagesExtension)
  if (ku === null || !ku.critical) broken.push('key usage must be present and critical')
  else {
    if ((ku.usages & x509.KeyUsageFlags.digitalSignature) === 0) broken.push('key usage must include digitalSignature')
    if ((ku.usages & (x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign)) !== 0) broken.push('a leaf\'s key usage must not include keyCertSign or cRLSign')
  }
  const eku = cert.getExtension(x509.ExtendedKeyUsageExtension)
  const usages = eku?.usages.map(String) ?? []
  for (const [oid, label] of [[x509.ExtendedKeyUsage.serverAuth, 'serverAuth'], [x509.ExtendedKeyUsage.clientAuth, 'clientAuth']] as const) {
    if (!usages.includes(oid)) broken.push(`extended key usage must include ${label}`)
  }
  let peerId: string | undefined
  const ext = cert.extensions.find((e) => e.type === LIBP2P_EXTENSION_OID)
  if (ext !== undefined) {
    try {
      peerId = await peerIdFromLibp2pExtension(new Uint8Array(ext.value), new Uint8Array(cert.publicKey.rawData))
    } catch (err) {
      broken.push((err as Error).message)
    }
  }
  if (broken.length > 0 || id === undefined) {
    throw new MeshError('MESH_ERR_IDENTITY_INVALID', `not a valid X.509-SVID (${cert.subject}): ${broken.join('; ')}`, { details: { rules: broken } })
  }
  return {
    spiffeId: uris[0],
    trustDomain: id.trustDomain,
    hosts: san!.names.items.filter((n) => n.type === 'dns' || n.type === 'ip').map((n) => n.value),
    notBefore: cert.notBefore,
    notAfter: cert.notAfter,
    ...(peerId === undefined ? {} : { peerId }),
  }
}
