// A root CA and an intermediate CA under it, made at test time, as SPIRE and Vault deployments
// often issue: SVIDs signed by the intermediate, the root alone in the trust bundle. The
// intermediate is a real `LocalCa` (its files in a home folder), so `issueSvid` issues from it.
import { mkdir, writeFile } from 'node:fs/promises'
import { caPaths, LocalCa } from '../../src/identity/local-ca.ts'
import { issueSvid } from '../../src/identity/svid.ts'
import type { IssuedSvid, SvidRequest } from '../../src/identity/svid.ts'
import { generateKeys, KEY_ALGORITHM, privateKeyPem, serialNumber, x509 } from '../../src/identity/x509.ts'
import type { CryptoKey, CryptoKeyPair } from '../../src/identity/x509.ts'

export interface CaChain {
  /** Signs as the intermediate; its `pem` is the intermediate's certificate. */
  intermediate: LocalCa
  /** The root's certificate: the trust bundle. */
  rootPem: string
}

/** A CA certificate of `trustDomain`, self-signed without `issuer` (a root with no path length limit). */
async function caCertificate (trustDomain: string, cn: string, issuer?: { cert: x509.X509Certificate, key: CryptoKey }): Promise<{ cert: x509.X509Certificate, keys: CryptoKeyPair }> {
  const keys = await generateKeys()
  const now = Date.now()
  const extensions: x509.Extension[] = [
    new x509.BasicConstraintsExtension(true, issuer === undefined ? undefined : 0, true),
    new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, true),
    await x509.SubjectKeyIdentifierExtension.create(keys.publicKey),
    new x509.SubjectAlternativeNameExtension([{ type: 'url', value: `spiffe://${trustDomain}` }]),
  ]
  const common = { serialNumber: serialNumber(), notBefore: new Date(now - 60_000), notAfter: new Date(now + 24 * 3600_000), signingAlgorithm: KEY_ALGORITHM }
  if (issuer === undefined) return { cert: await x509.X509CertificateGenerator.createSelfSigned({ ...common, name: `CN=${cn}`, keys, extensions }), keys }
  extensions.push(await x509.AuthorityKeyIdentifierExtension.create(issuer.cert))
  const cert = await x509.X509CertificateGenerator.create({ ...common, subject: `CN=${cn}`, issuer: issuer.cert.subject, signingKey: issuer.key, publicKey: keys.publicKey, extensions })
  return { cert, keys }
}

/** A root and an intermediate of `trustDomain`; the intermediate's files go to `<home>/ca/<trustDomain>/`. */
export async function caChain (home: string, trustDomain: string): Promise<CaChain> {
  const root = await caCertificate(trustDomain, `test root for ${trustDomain}`)
  const inter = await caCertificate(trustDomain, `test intermediate for ${trustDomain}`, { cert: root.cert, key: root.keys.privateKey })
  const paths = caPaths(home, trustDomain)
  await mkdir(paths.dir, { recursive: true, mode: 0o700 })
  await writeFile(paths.key, await privateKeyPem(inter.keys.privateKey), { mode: 0o600 })
  await writeFile(paths.cert, inter.cert.toString('pem') + '\n')
  return { intermediate: await LocalCa.open(home, trustDomain, { create: false }), rootPem: root.cert.toString('pem') + '\n' }
}

/** An SVID issued by the intermediate: `certPem` is the leaf then the intermediate, `bundlePem` the root. */
export async function issueThrough (chain: CaChain, req: SvidRequest): Promise<IssuedSvid> {
  const svid = await issueSvid(chain.intermediate, req)
  return { ...svid, certPem: svid.certPem + chain.intermediate.pem + '\n', bundlePem: chain.rootPem }
}
