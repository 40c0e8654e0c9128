import { createPublicKey } from 'node:crypto'
import type { X509Certificate } from 'node:crypto'
import { watch } from 'node:fs'
import type { FSWatcher } from 'node:fs'
import { readFile } from 'node:fs/promises'
import { basename, dirname, resolve } from 'node:path'
import { logger } from '../telemetry/log.ts'
import { systemClock } from '../clock.ts'
import type { Clock, TimerHandle } from '../clock.ts'
import { MeshError } from '../errors.ts'
import { IdentityListeners } from './provider.ts'
import type { Identity, IdentityProvider } from './provider.ts'
import { parseSpiffeId } from './spiffe-id.ts'
import { certsOf, keyHashOf, peerFacts, pemBlocks, verifyChain } from './tls.ts'

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
 * Reads an identity from files and checks it (`checkIdentity`): the certificate file holds a
 * valid X.509-SVID, and any intermediates, leading to a CA of the bundle, all within their
 * validity periods, and the key is its key. Throws `MESH_ERR_IDENTITY_INVALID` saying which
 * check failed and in which file.
 */
export async function readIdentityFiles (init: Omit<FileProviderInit, 'clock'>, now = Date.now()): Promise<Identity> {
  const bad = (why: string): MeshError => new MeshError('MESH_ERR_IDENTITY_INVALID', why, { details: { cert: init.certPath, key: init.keyPath, bundle: init.bundlePath } })
  const [certPem, keyPem, bundlePem] = await Promise.all([init.certPath, init.keyPath, init.bundlePath].map(async (p) => readFile(p, 'utf8').catch((err: Error) => {
    throw bad(`cannot read ${p}: ${err.message}`)
  })))
  return await checkIdentity({ certPem, keyPem, bundlePem }, { cert: init.certPath, key: init.keyPath, bundle: init.bundlePath }, init.keyPath, now)
}

/** The extended key usages of an agent's SVID: it both serves and calls. */
const AGENT_EKU = [['1.3.6.1.5.5.7.3.1', 'serverAuth'], ['1.3.6.1.5.5.7.3.2', 'clientAuth']] as const

/**
 * Checks an identity's PEMs with Node's own crypto, as agents verify peers (tls.ts: no X.509
 * library is loaded). The certificate PEM holds an X.509-SVID, then any intermediate CA
 * certificates (SPIRE often issues through one): the chain must lead to a CA of the bundle,
 * every certificate be within its validity period, and the key be the SVID's key. `where` names
 * the three in errors (file paths, or where a provider got them); `keyPath` is where the key is
 * kept. Node reads neither key usage bits nor extensions it does not know: a key usage that
 * allows no signing is left to the peers' TLS handshakes to refuse; keyCertSign on a leaf (the
 * SPIFFE rules forbid it) is harmless without cA and not refused; the libp2p extension is not
 * read (`facts.peerId` stays unset: the signed advert binds the peer ID to the key).
 */
export async function checkIdentity (pems: { certPem: string, keyPem: string, bundlePem: string }, where: { cert: string, key: string, bundle: string }, keyPath: string, now = Date.now()): Promise<Identity> {
  const { keyPem, bundlePem } = pems
  const bad = (why: string): MeshError => new MeshError('MESH_ERR_IDENTITY_INVALID', why, { details: where })
  const read = (pem: string, what: string): X509Certificate[] => {
    let certs: X509Certificate[]
    try {
      certs = certsOf(pem)
    } catch (err) {
      throw bad(`${what} holds a certificate that cannot be read: ${(err as Error).message}`)
    }
    if (certs.length === 0) throw bad(`${what} holds no PEM certificate`)
    return certs
  }
  const chain = read(pems.certPem, where.cert)
  read(bundlePem, where.bundle)
  const leaf = chain[0]
  const v = verifyChain(chain, bundlePem)
  if (typeof v === 'string') {
    // verifyChain checks the leaf before the chain: say which of the two is wrong.
    const notSvid = typeof peerFacts(leaf.raw) === 'string' || leaf.ca
    throw bad(notSvid ? `${where.cert} is not a valid X.509-SVID: ${v}` : `${where.cert} is not signed by a CA of ${where.bundle}: ${v}`)
  }
  const { spiffeId, trustDomain, keyHash, notAfter } = v.admitted
  const broken: string[] = []
  if (parseSpiffeId(spiffeId).path === '') broken.push('the SPIFFE ID of a leaf must have a path')
  for (const [oid, label] of AGENT_EKU) {
    if (!(leaf.keyUsage ?? []).includes(oid)) broken.push(`extended key usage must include ${label}`)
  }
  if (broken.length > 0) throw bad(`${where.cert} is not a valid X.509-SVID: ${broken.join('; ')}`)
  if (now < v.notBefore || now > notAfter) throw bad(`${where.cert}${chain.length > 1 ? ' (with the intermediates it holds)' : ''} is valid from ${new Date(v.notBefore).toISOString()} to ${new Date(notAfter).toISOString()}, not now`)
  let keySpki: Buffer
  try {
    keySpki = createPublicKey(keyPem).export({ type: 'spki', format: 'der' })
  } catch (err) {
    throw bad(`${where.key} holds no private key: ${(err as Error).message}`)
  }
  if (keyHashOf(keySpki) !== keyHash) throw bad(`${where.key} is not the key of ${where.cert}`)
  // One block a line: OpenSSL, which TLS hands the chain to, fails on two blocks with no line
  // break between them (`cat leaf.pem int.pem` of files without a final newline): "bad end line".
  const certPem = pemBlocks(pems.certPem).join('\n') + '\n'
  const facts = { spiffeId, trustDomain, hosts: hostsOf(leaf), notBefore: new Date(v.notBefore), notAfter: new Date(notAfter) }
  return { spiffeId, certPem, keyPem, keyPath, bundlePem, facts }
}

/** The DNS and IP SANs of a certificate: Node quotes a name it must escape, and writes IPv6 in full. */
function hostsOf (cert: X509Certificate): string[] {
  const hosts: string[] = []
  for (const entry of (cert.subjectAltName ?? '').split(', ')) {
    const m = /^(DNS|IP Address):(.*)$/.exec(entry)
    if (m === null) continue
    const name = m[2].startsWith('"') ? JSON.parse(m[2]) as string : m[2]
    hosts.push(m[1] === 'IP Address' && name.includes(':') ? new URL(`http://[${name}]`).hostname.slice(1, -1) : name)
  }
  return hosts
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
      log.error('the identity files changed but cannot be used (%s); keeping %s until %s', err, current.spiffeId, current.facts.notAfter.toISOString())
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
