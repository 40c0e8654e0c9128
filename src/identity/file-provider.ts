import { createPublicKey } from 'node:crypto'
import { watch } from 'node:fs'
import type { FSWatcher } from 'node:fs'
import { readFile } from 'node:fs/promises'
import { basename, dirname, resolve } from 'node:path'
import { logger } from '@libp2p/logger'
import { systemClock } from '../clock.ts'
import type { Clock, TimerHandle } from '../clock.ts'
import { MeshError } from '../errors.ts'
import { IdentityListeners } from './provider.ts'
import type { Identity, IdentityProvider } from './provider.ts'
import { checkSvid } from './svid.ts'
import { x509 } from './x509.ts'

const log = logger('mesh:identity')

/** Changes to the files settle for this long before they are read (a writer replaces them one by one). */
const SETTLE_MS = 200

/** The files of the "file" provider (`MCP_MESH_TLS_CERT`, `MCP_MESH_TLS_KEY`, `MCP_MESH_TLS_CA`). */
export interface FileProviderInit {
  certPath: string
  keyPath: string
  /** The CA certificates of the agent's own trust domain. */
  bundlePath: string
  clock?: Clock
}

/**
 * Reads an identity from files and checks it: the certificate is a valid X.509-SVID, within its
 * validity period, signed by a CA of the bundle, and the key is its key. Throws
 * `MESH_ERR_IDENTITY_INVALID` saying which check failed and in which file.
 */
export async function readIdentityFiles (init: Omit<FileProviderInit, 'clock'>, now = Date.now()): Promise<Identity> {
  const bad = (why: string): MeshError => new MeshError('MESH_ERR_IDENTITY_INVALID', why, { details: { cert: init.certPath, key: init.keyPath, bundle: init.bundlePath } })
  const [certPem, keyPem, bundlePem] = await Promise.all([init.certPath, init.keyPath, init.bundlePath].map(async (p) => readFile(p, 'utf8').catch((err: Error) => {
    throw bad(`cannot read ${p}: ${err.message}`)
  })))
  return await checkIdentity({ certPem, keyPem, bundlePem }, { cert: init.certPath, key: init.keyPath, bundle: init.bundlePath }, init.keyPath, now)
}

/**
 * Checks an identity's PEMs: the certificate is a valid X.509-SVID, within its validity period,
 * signed by a CA of the bundle, and the key is its key. `where` names the three in errors (file
 * paths, or where a provider got them); `keyPath` is where the key is kept.
 */
export async function checkIdentity (pems: { certPem: string, keyPem: string, bundlePem: string }, where: { cert: string, key: string, bundle: string }, keyPath: string, now = Date.now()): Promise<Identity> {
  const { certPem, keyPem, bundlePem } = pems
  const bad = (why: string): MeshError => new MeshError('MESH_ERR_IDENTITY_INVALID', why, { details: where })
  let cert: x509.X509Certificate
  let cas: x509.X509Certificate[]
  try {
    cert = new x509.X509Certificate(certPem)
    cas = x509.PemConverter.decode(bundlePem).map((der) => new x509.X509Certificate(der))
  } catch (err) {
    throw bad(`${where.cert} or ${where.bundle} holds no PEM certificate: ${(err as Error).message}`)
  }
  const facts = await checkSvid(cert)
  if (now < cert.notBefore.getTime() || now > cert.notAfter.getTime()) throw bad(`${where.cert} is valid from ${cert.notBefore.toISOString()} to ${cert.notAfter.toISOString()}, not now`)
  let signed = false
  for (const ca of cas) {
    if (ca.subject === cert.issuer && await cert.verify({ publicKey: ca.publicKey, signatureOnly: true })) signed = true
  }
  if (!signed) throw bad(`${where.cert} is not signed by a CA of ${where.bundle}`)
  let keySpki: Buffer
  try {
    keySpki = createPublicKey(keyPem).export({ type: 'spki', format: 'der' })
  } catch (err) {
    throw bad(`${where.key} holds no private key: ${(err as Error).message}`)
  }
  if (!keySpki.equals(Buffer.from(cert.publicKey.rawData))) throw bad(`${where.key} is not the key of ${where.cert}`)
  return { spiffeId: facts.spiffeId, certPem, keyPem, keyPath, bundlePem, facts }
}

/**
 * The "file" provider: the identity in certificate files (cert-manager, a deployment's secret
 * volume, `meshctl ca issue`), read again whenever a file changes. A rewrite that does not pass
 * `readIdentityFiles` is logged and the last good identity kept.
 */
export async function startFileProvider (init: FileProviderInit): Promise<IdentityProvider> {
  const clock = init.clock ?? systemClock
  const paths = { certPath: resolve(init.certPath), keyPath: resolve(init.keyPath), bundlePath: resolve(init.bundlePath) }
  let current = await readIdentityFiles(paths, clock.now())
  const listeners = new IdentityListeners()
  let pending: TimerHandle | undefined
  const reload = async (): Promise<void> => {
    pending = undefined
    try {
      const next = await readIdentityFiles(paths, clock.now())
      if (next.certPem === current.certPem && next.keyPem === current.keyPem && next.bundlePem === current.bundlePem) return
      current = next
      listeners.emit(next)
    } catch (err) {
      log.error('the identity files changed but cannot be used (%s); keeping %s until %s', (err as Error).message, current.spiffeId, current.facts.notAfter.toISOString())
    }
  }
  // Folders, not files: secret volumes and editors replace a file by renaming another over it.
  const names = new Map<string, Set<string>>()
  for (const p of Object.values(paths)) {
    const set = names.get(dirname(p)) ?? new Set<string>()
    set.add(basename(p))
    names.set(dirname(p), set)
  }
  const watchers: FSWatcher[] = [...names].map(([dir, files]) => watch(dir, { persistent: false }, (_event, file) => {
    if (file !== null && !files.has(file) && !file.startsWith('..')) return // `..data` is how Kubernetes swaps a secret volume
    if (pending !== undefined) clock.clearTimeout(pending)
    pending = clock.setTimeout(() => { void reload() }, SETTLE_MS)
  }))
  return {
    kind: 'file',
    current: () => current,
    onChange: (l) => listeners.add(l),
    async stop () {
      for (const w of watchers) w.close()
      if (pending !== undefined) clock.clearTimeout(pending)
    },
  }
}
