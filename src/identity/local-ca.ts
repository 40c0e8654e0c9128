import { mkdir, mkdtemp, readFile, rename, rm, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { MeshError } from '../errors.ts'
import { isTrustDomain } from './spiffe-id.ts'
import { caPaths, checkKeyFileMode } from './ca-files.ts'
import { generateKeys, importPrivateKey, KEY_ALGORITHM, privateKeyPem, serialNumber, x509 } from './x509.ts'
import type { CryptoKey } from './x509.ts'

/** How long a CA made by `auto` lasts: 5 years (a development CA, replaced by rollover before then). */
const CA_LIFETIME_MS = 5 * 365 * 24 * 3600_000

export { caPaths, checkKeyFileMode } from './ca-files.ts'

/**
 * The local certificate authority of "auto" mode: a self-signed P-256 CA per trust domain, kept
 * in `<home>/ca/<trust-domain>/` (folder 0700, key 0600), created on first use and reused after.
 * Any process that can read its key can mint identities of the trust domain: it is for one host
 * and for development. Production uses the file, SPIRE or Vault providers, where agents hold no
 * CA key.
 */
export class LocalCa {
  readonly trustDomain: string
  readonly certificate: x509.X509Certificate
  readonly paths: { dir: string, cert: string, key: string }
  readonly #key: CryptoKey

  private constructor (trustDomain: string, certificate: x509.X509Certificate, key: CryptoKey, paths: { dir: string, cert: string, key: string }) {
    this.trustDomain = trustDomain
    this.certificate = certificate
    this.#key = key
    this.paths = paths
  }

  /** The CA certificate as PEM: the trust bundle of the domain. */
  get pem (): string {
    return this.certificate.toString('pem')
  }

  /** Signs `params` (a leaf certificate) with the CA key. */
  async sign (params: Omit<x509.X509CertificateCreateParams, 'issuer' | 'signingKey' | 'signingAlgorithm'>): Promise<x509.X509Certificate> {
    return await x509.X509CertificateGenerator.create({ ...params, issuer: this.certificate.subject, signingKey: this.#key, signingAlgorithm: KEY_ALGORITHM })
  }

  /**
   * Loads the CA of `trustDomain` from `home`. `create`: make it when there is none (two processes
   * racing to create it end up with the same one). Throws `MESH_ERR_IDENTITY_CA` when there is none
   * and `create` is false, or its files cannot be read, and `MESH_ERR_IDENTITY_KEY_PERMISSIONS`
   * when the key file is open to others.
   */
  static async open (home: string, trustDomain: string, options: { create: boolean }): Promise<LocalCa> {
    if (!isTrustDomain(trustDomain)) {
      throw new MeshError('MESH_ERR_IDENTITY_INVALID', `"${trustDomain}" is not a trust domain: use lowercase letters, digits, dots, dashes and underscores`)
    }
    const paths = caPaths(home, trustDomain)
    const loaded = await LocalCa.#load(trustDomain, paths)
    if (loaded !== undefined) return loaded
    if (!options.create) {
      throw new MeshError('MESH_ERR_IDENTITY_CA', `no local CA for trust domain ${trustDomain} in ${paths.dir}: create one with meshctl ca init`, { details: { dir: paths.dir } })
    }
    await LocalCa.#create(trustDomain, paths)
    const created = await LocalCa.#load(trustDomain, paths)
    if (created === undefined) throw new MeshError('MESH_ERR_IDENTITY_CA', `the CA written to ${paths.dir} cannot be read back`)
    return created
  }

  static async #load (trustDomain: string, paths: LocalCa['paths']): Promise<LocalCa | undefined> {
    let certPem: string
    try {
      certPem = await readFile(paths.cert, 'utf8')
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined
      throw new MeshError('MESH_ERR_IDENTITY_CA', `cannot read ${paths.cert}: ${(err as Error).message}`, { cause: err })
    }
    try {
      await checkKeyFileMode(paths.key)
      const key = await importPrivateKey(await readFile(paths.key, 'utf8'))
      return new LocalCa(trustDomain, new x509.X509Certificate(certPem), key, paths)
    } catch (err) {
      if (err instanceof MeshError) throw err
      throw new MeshError('MESH_ERR_IDENTITY_CA', `cannot use the CA in ${paths.dir}: ${(err as Error).message}`, { cause: err })
    }
  }

  /** Writes a new CA to a private folder, then renames it into place: a racing process's CA wins whole, never half. */
  static async #create (trustDomain: string, paths: LocalCa['paths']): Promise<void> {
    const keys = await generateKeys()
    const now = Date.now()
    const cert = await x509.X509CertificateGenerator.createSelfSigned({
      serialNumber: serialNumber(),
      name: `O=mcp-mesh, CN=mcp-mesh local CA for ${trustDomain}`,
      notBefore: new Date(now - 60_000),
      notAfter: new Date(now + CA_LIFETIME_MS),
      signingAlgorithm: KEY_ALGORITHM,
      keys,
      extensions: [
        new x509.BasicConstraintsExtension(true, 0, true),
        new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, true),
        await x509.SubjectKeyIdentifierExtension.create(keys.publicKey),
        // A signing certificate may name its trust domain (X.509-SVID spec, 4.1).
        new x509.SubjectAlternativeNameExtension([{ type: 'url', value: `spiffe://${trustDomain}` }]),
      ],
    })
    const parent = join(paths.dir, '..')
    try {
      await mkdir(parent, { recursive: true, mode: 0o700 })
      const tmp = await mkdtemp(join(parent, `.${trustDomain}-`))
      await writeFile(join(tmp, 'ca.key'), await privateKeyPem(keys.privateKey), { mode: 0o600 })
      await writeFile(join(tmp, 'ca.pem'), cert.toString('pem') + '\n', { mode: 0o644 })
      await rename(tmp, paths.dir).catch(async (err: NodeJS.ErrnoException) => {
        await rm(tmp, { recursive: true, force: true })
        if (err.code !== 'EEXIST' && err.code !== 'ENOTEMPTY') throw err
      })
    } catch (err) {
      throw new MeshError('MESH_ERR_IDENTITY_CA', `cannot create the CA in ${paths.dir}: ${(err as Error).message}`, { cause: err })
    }
  }
}
