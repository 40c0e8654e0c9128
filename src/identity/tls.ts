import { createHash, X509Certificate } from 'node:crypto'
import type { KeyObject } from 'node:crypto'
import type { IncomingMessage, RequestListener, Server, ServerResponse } from 'node:http'
import { createServer as createHttpsServer } from 'node:https'
import type { Server as HttpsServer } from 'node:https'
import { checkServerIdentity, createSecureContext } from 'node:tls'
import type { DetailedPeerCertificate, PeerCertificate, SecureContext, TLSSocket } from 'node:tls'
import type { AuthInfo } from '@modelcontextprotocol/sdk/server/auth/types.js'
import { MeshError } from '../errors.ts'
import type { Identity } from './provider.ts'
import type { Admitted } from '../gossip/admission.ts'
import { parseSpiffeId } from './spiffe-id.ts'

/**
 * Agent-side mutual TLS with Node's own crypto: no X.509 library is loaded to serve or call
 * (parsing with one costs about 1 ms and 9 MB of memory). Certificates are read once per
 * fingerprint.
 */

/** What a peer's certificate says, as the mesh checks it. */
export interface PeerFacts {
  spiffeId: string
  trustDomain: string
  /** SHA-256 of the certificate's public key (SubjectPublicKeyInfo, DER), base64url: what adverts endorse. */
  keyHash: string
  notAfter: number
}

/** What an advert says the provider's TLS identity is (see `AdvertSchema.identity`). */
export interface ExpectedPeer {
  spiffeId: string
  keyHash: string
}

const MAX_CACHED = 4_096
/** Connections stop being reused this long before a certificate they were made with expires. */
const CLOSE_AHEAD_MS = 5_000
/** A timer delay Node accepts (at most about 24.8 days; an SVID lives for hours). */
const clampDelay = (ms: number): number => Math.max(0, Math.min(ms, 2 ** 31 - 1))
const facts = new Map<string, PeerFacts | string>()

/** SHA-256 of a SubjectPublicKeyInfo in DER, base64url (43 characters). */
export function keyHashOf (spki: Uint8Array): string {
  return createHash('sha256').update(spki).digest('base64url')
}

/**
 * Reads the SPIFFE ID (the one URI SAN), the key hash and the expiry of a DER certificate,
 * cached by its SHA-256 fingerprint. Returns a reason string when it is not an SVID.
 */
export function peerFacts (der: Uint8Array, fingerprint?: string): PeerFacts | string {
  const key = fingerprint ?? createHash('sha256').update(der).digest('hex')
  let f = facts.get(key)
  if (f !== undefined) return f
  try {
    const cert = new X509Certificate(der)
    const uris = (cert.subjectAltName ?? '').split(', ').filter((n) => n.startsWith('URI:')).map((n) => n.slice(4))
    if (uris.length !== 1) f = `its certificate holds ${uris.length} URI SANs, not exactly one SPIFFE ID`
    else {
      const id = parseSpiffeId(uris[0])
      const spki = cert.publicKey.export({ type: 'spki', format: 'der' })
      f = { spiffeId: uris[0], trustDomain: id.trustDomain, keyHash: keyHashOf(spki), notAfter: Date.parse(cert.validTo) }
    }
  } catch (err) {
    f = `its certificate is not an X.509-SVID: ${(err as Error).message}`
  }
  if (facts.size >= MAX_CACHED) facts.delete(facts.keys().next().value!)
  facts.set(key, f)
  return f
}

const PEM_BLOCK = /-----BEGIN CERTIFICATE-----[^-]+-----END CERTIFICATE-----/g

const parsedPems = new Map<string, X509Certificate[]>()
/**
 * The PEM blocks of a bundle, one string each: OpenSSL reads only the first certificate of two
 * concatenated without a line break between them (a bundle made with `a.pem + b.pem`).
 */
export function pemBlocks (pem: string): string[] {
  return pem.match(PEM_BLOCK) ?? []
}

/** The certificates of a PEM text, parsed once per text. */
export function certsOf (pem: string): X509Certificate[] {
  let certs = parsedPems.get(pem)
  if (certs === undefined) {
    certs = (pem.match(PEM_BLOCK) ?? []).map((b) => new X509Certificate(b))
    if (parsedPems.size >= 64) parsedPems.clear()
    parsedPems.set(pem, certs)
  }
  return certs
}

/** A verified chain: who it names, its leaf key, and the window in which every certificate is valid. */
export interface Verified { admitted: Admitted, key: KeyObject, notBefore: number }

/**
 * Verifies an SVID chain (leaf first, then the CA certificates the peer sent) against one trust
 * domain's bundle: it must lead to a CA of the bundle, the leaf must be an SVID and not a CA.
 * Validity in time is the caller's to check (`notBefore`, `admitted.notAfter`). Returns why not.
 */
export function verifyChain (chain: X509Certificate[], bundlePem: string): Verified | string {
  const leaf = chain[0]
  const f = peerFacts(leaf.raw)
  if (typeof f === 'string') return f
  if (leaf.ca) return 'its certificate is a CA certificate, not an SVID'
  const roots = certsOf(bundlePem)
  let cur = leaf
  for (let depth = 0; ; depth++) {
    if (roots.some((r) => cur.checkIssued(r) && cur.verify(r.publicKey))) break
    const next = chain[depth + 1]
    if (next === undefined) return `its chain does not lead to a CA of the trust domain ${f.trustDomain}`
    if (!next.ca || !cur.checkIssued(next) || !cur.verify(next.publicKey)) return 'its chain is broken: a certificate is not signed by the next one'
    cur = next
  }
  const notBefore = Math.max(...chain.map((c) => Date.parse(c.validFrom)))
  const notAfter = Math.min(...chain.map((c) => Date.parse(c.validTo)))
  return { admitted: { spiffeId: f.spiffeId, trustDomain: f.trustDomain, keyHash: f.keyHash, notAfter }, key: leaf.publicKey, notBefore }
}

/**
 * Verifies chains sent as DER in base64 (leaf first, as admission proofs and adverts carry them)
 * against the bundle of the leaf's own trust domain, once per chain and bundle (a bounded
 * cache). Validity in time and revocation are the caller's to check. Returns why not.
 */
export function chainVerifier (bundleOf: (trustDomain: string) => string | undefined): (chain: readonly string[]) => Verified | string {
  const verified = new Map<string, Verified | string>()
  return (chain) => {
    const leaf = peerFacts(Buffer.from(chain[0], 'base64'))
    if (typeof leaf === 'string') return leaf
    const bundlePem = bundleOf(leaf.trustDomain)
    if (bundlePem === undefined) return `${leaf.spiffeId} is of the trust domain ${leaf.trustDomain}, which this member does not trust`
    const key = createHash('sha256').update(chain.join('.')).update(bundlePem).digest('base64')
    let v = verified.get(key)
    if (v === undefined) {
      try {
        v = verifyChain(chain.map((c) => new X509Certificate(Buffer.from(c, 'base64'))), bundlePem)
      } catch (err) {
        v = `its chain is not X.509: ${(err as Error).message}`
      }
      if (verified.size >= MAX_CACHED) verified.delete(verified.keys().next().value!)
      verified.set(key, v)
    }
    return v
  }
}

/** The facts of this agent's own identity (for its advert). */
export function identityFacts (identity: Identity): PeerFacts {
  const f = peerFacts(new X509Certificate(identity.certPem).raw)
  if (typeof f === 'string') throw new MeshError('MESH_ERR_IDENTITY_INVALID', f)
  return f
}

/** A TLS context holding the agent's certificate and key, trusting only its own trust domain's bundle. */
export function secureContextOf (identity: Identity): SecureContext {
  return createSecureContext({ cert: identity.certPem, key: identity.keyPem, ca: pemBlocks(identity.bundlePem), minVersion: 'TLSv1.3' })
}

/**
 * `checkServerIdentity` for calls: the chain was verified against our trust domain's bundle;
 * here the provider must hold exactly the SPIFFE ID and key its signed advert endorses, and its
 * certificate must name the host it is served at (a DNS or IP SAN), so an advert cannot point
 * callers at an address its owner does not serve. Returns an error to refuse the connection.
 */
export function checkProvider (expected: ExpectedPeer | undefined, trustDomain: string): (host: string, cert: PeerCertificate) => Error | undefined {
  return (host, cert) => {
    const f = peerFacts(cert.raw, cert.fingerprint256)
    const refuse = (why: string): Error => new MeshError('MESH_ERR_CALL_UNTRUSTED', `the provider's certificate was refused: ${why}`, { details: { notSent: true, reason: why } })
    if (typeof f === 'string') return refuse(f)
    if (f.trustDomain !== trustDomain) return refuse(`${f.spiffeId} is not of our trust domain ${trustDomain}`)
    if (expected === undefined) return undefined
    if (f.spiffeId !== expected.spiffeId) return refuse(`it is ${f.spiffeId}, but the advert names ${expected.spiffeId}`)
    if (f.keyHash !== expected.keyHash) return refuse(`its key is not the one ${expected.spiffeId}'s advert endorses`)
    if (checkServerIdentity(host, cert) !== undefined) return refuse(`its certificate does not name the host ${host} its advert's endpoint is at`)
    return undefined
  }
}

/** What the TLS endpoint does with each client. */
export interface TlsServerInit {
  identity: Identity
  trustDomain: string
  /** The bundles of registered partner domains (federation): their callers are served too. */
  trust?: (trustDomain: string) => string | undefined
  /** Revoked identities (refused as `tls-revoked`, and their connections closed by `recheck`). */
  revoked?: (spiffeId: string, keyHash: string) => boolean
  /** Counts refusals (`tls-unauthorized`, `tls-foreign-domain`, `tls-not-svid`, `tls-handshake`). */
  onRefused: (reason: string, detail: string) => void
  /** Wall clock for the connection age cap. */
  now?: () => number
}

/** An HTTPS server for the endpoint, with the identity it serves kept current. */
export interface TlsServer {
  createServer: (listener: RequestListener) => Server
  /** The caller of a request (its SPIFFE ID as `clientId`), for `ctx.authInfo`. */
  authenticate: (req: IncomingMessage) => AuthInfo | undefined
  /** Serves a renewed identity to new connections. */
  update: (identity: Identity) => void
  /** Closes the connections of partner domains no longer trusted (a revoked entity) and of revoked identities. */
  recheck: () => void
}

/** A client certificate our bundle did not verify: its SPIFFE facts when a partner's bundle does, else why not. */
function partnerCaller (socket: TLSSocket, own: string, trust: ((td: string) => string | undefined) | undefined, now: number): PeerFacts | string {
  const reason = String(socket.authorizationError ?? 'no client certificate')
  const cert = socket.getPeerCertificate(true)
  if (cert?.raw === undefined) return reason
  const f = peerFacts(cert.raw, cert.fingerprint256)
  if (typeof f === 'string' || f.trustDomain === own) return reason
  const bundle = trust?.(f.trustDomain)
  if (bundle === undefined) return `${reason} (${f.spiffeId}: ${f.trustDomain} is not a registered entity)`
  const chain: X509Certificate[] = []
  for (let c: DetailedPeerCertificate | undefined = cert; c?.raw !== undefined && chain.length < 4; c = c.issuerCertificate === c ? undefined : c.issuerCertificate) {
    chain.push(new X509Certificate(c.raw))
  }
  const v = verifyChain(chain, bundle)
  if (typeof v === 'string') return `${f.spiffeId}: ${v}`
  if (now < v.notBefore || now >= v.admitted.notAfter) return `${f.spiffeId}: its certificate is not within its validity`
  return f
}

/**
 * The endpoint's TLS: a client certificate is required and checked when the handshake ends,
 * before a byte of HTTP is read. TLS is told to accept any client so that the real reason can be
 * counted and logged (a TLS 1.3 client refused during the handshake only sees "other side
 * closed"); a client whose chain does not verify against our bundle, or whose SPIFFE ID is of
 * another trust domain, is destroyed unread. A connection closes when either certificate expires.
 */
export function tlsServer (init: TlsServerInit): TlsServer {
  const now = init.now ?? Date.now
  const callers = new WeakMap<TLSSocket, AuthInfo>()
  const closing = new WeakSet<TLSSocket>()
  let identity = init.identity
  let server: HttpsServer | undefined
  let ownExpiry = identityFacts(identity).notAfter
  /** Every served connection and who it is, for `recheck`. */
  const live = new Map<TLSSocket, PeerFacts>()
  return {
    recheck () {
      for (const [socket, f] of live) {
        const untrusted = f.trustDomain !== init.trustDomain && init.trust?.(f.trustDomain) === undefined
        if (untrusted) init.onRefused('tls-unauthorized', `${f.trustDomain} is no longer a registered entity: its connection is closed`)
        else if (init.revoked?.(f.spiffeId, f.keyHash) === true) init.onRefused('tls-revoked', f.spiffeId)
        else continue
        socket.destroy()
      }
    },
    createServer (listener) {
      // PEM options, not a prebuilt `secureContext`: a server given one fails every handshake
      // ("no suitable signature algorithm", Node 24).
      const s = server = createHttpsServer({ cert: identity.certPem, key: identity.keyPem, ca: pemBlocks(identity.bundlePem), requestCert: true, rejectUnauthorized: false, minVersion: 'TLSv1.3' }, listener)
      // A client that gave up in the handshake (it refused our certificate, or spoke no TLS 1.3).
      s.on('tlsClientError', (err) => { init.onRefused('tls-handshake', err.message) })
      s.on('secureConnection', (socket: TLSSocket) => {
        const refuse = (reason: string, detail: string): void => {
          init.onRefused(reason, detail)
          socket.destroy()
        }
        let f: PeerFacts | string
        if (socket.authorized) {
          const cert = socket.getPeerCertificate()
          f = peerFacts(cert.raw, cert.fingerprint256)
          if (typeof f === 'string') { refuse('tls-not-svid', f); return }
          // Verified by our own bundle, so it must name our own domain: our CA cannot vouch for a partner's.
          if (f.trustDomain !== init.trustDomain) { refuse('tls-foreign-domain', f.spiffeId); return }
        } else {
          // Not verified by our bundle: a partner's caller (a registered entity) is verified
          // against its own domain's bundle, and only that one.
          f = partnerCaller(socket, init.trustDomain, init.trust, now())
          if (typeof f === 'string') { refuse('tls-unauthorized', f); return }
        }
        if (init.revoked?.(f.spiffeId, f.keyHash) === true) { refuse('tls-revoked', f.spiffeId); return }
        callers.set(socket, { token: '', clientId: f.spiffeId, scopes: [], extra: { spiffeId: f.spiffeId } })
        live.set(socket, f)
        socket.once('close', () => { live.delete(socket) })
        // Never past either certificate's expiry: from CLOSE_AHEAD_MS before it, answers carry
        // `Connection: close` (the client leaves between calls, not in the middle of one), then
        // the connection is cut at the expiry itself.
        const left = Math.min(f.notAfter, ownExpiry) - now()
        const soft = setTimeout(() => { closing.add(socket) }, clampDelay(left - CLOSE_AHEAD_MS))
        const hard = setTimeout(() => { socket.destroy() }, clampDelay(left))
        soft.unref()
        hard.unref()
        socket.once('close', () => {
          clearTimeout(soft)
          clearTimeout(hard)
        })
      })
      s.prependListener('request', (req: IncomingMessage, res: ServerResponse) => {
        if (closing.has(req.socket as TLSSocket)) res.shouldKeepAlive = false
      })
      return s
    },
    authenticate: (req) => callers.get(req.socket as TLSSocket),
    update (next) {
      identity = next
      ownExpiry = identityFacts(next).notAfter
      server?.setSecureContext({ cert: next.certPem, key: next.keyPem, ca: pemBlocks(next.bundlePem), minVersion: 'TLSv1.3' })
    },
  }
}
