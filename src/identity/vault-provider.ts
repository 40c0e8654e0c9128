import { X509Certificate } from 'node:crypto'
import { readFile } from 'node:fs/promises'
import { request as httpRequest } from 'node:http'
import { request as httpsRequest } from 'node:https'
import { isIP } from 'node:net'
import { systemClock } from '../clock.ts'
import type { Clock } from '../clock.ts'
import { MeshError } from '../errors.ts'
import { checkIdentity } from './file-provider.ts'
import { makeKeyDir } from './key-dir.ts'
import type { IdentityProvider } from './provider.ts'
import { renewingProvider } from './renewing.ts'
import { agentSpiffeId } from './spiffe-id.ts'
import type { TlsOptions } from '../config.ts'

/** What the "vault" provider needs: where Vault's PKI secrets engine is, and who the agent is. */
export interface VaultProviderInit {
  /** Vault's address (`VAULT_ADDR`), for example `https://vault.internal:8200`. */
  addr: string
  /** A token allowed to write `<mount>/issue/<role>` (`VAULT_TOKEN`). */
  token: string
  /** Where the PKI secrets engine is mounted (default `pki`). */
  mount: string
  /** The role that issues the mesh's SVIDs (it must allow the URI SAN `spiffe://<domain>/agent/*`). */
  role: string
  /** PEM of the CA that signed Vault's own TLS certificate (`VAULT_CACERT`), when not a public one. */
  caCertPem?: string
  trustDomain: string
  name: string
  /** Host names and IPs callers use (DNS and IP SANs). */
  hosts: string[]
  ttlMs: number
  clock?: Clock
  keyBase?: string
}

/** The provider's init from the validated `tls` options (the agent's and meshctl's), reading `VAULT_CACERT`. */
export async function vaultInit (tls: TlsOptions, name: string, hosts: string[], ttlMs: number): Promise<VaultProviderInit> {
  const v = tls.vault
  const caCertPem = v.caCert === undefined
    ? undefined
    : await readFile(v.caCert, 'utf8').catch((err: Error) => { throw new MeshError('MESH_ERR_IDENTITY_PROVIDER', `cannot read Vault's CA certificate ${v.caCert} (VAULT_CACERT): ${err.message}`) })
  return { addr: v.addr!, token: v.token!, mount: v.mount, role: v.role, ...(caCertPem === undefined ? {} : { caCertPem }), trustDomain: tls.trustDomain, name, hosts, ttlMs }
}

/** The part of Vault's answer to `issue` the provider reads (Vault API, PKI secrets engine). */
interface IssueData { certificate?: unknown, private_key?: unknown, issuing_ca?: unknown, ca_chain?: unknown }

const MAX_ANSWER = 256 * 1024

/**
 * The "vault" provider: Vault's PKI secrets engine issues the agent an SVID and its key
 * (`POST /v1/<mount>/issue/<role>` with `X-Vault-Token`) at start and at each half-life. The key
 * is written to the private key folder (`/dev/shm`, 0600) and removed on stop; the bundle is the
 * issuing CA and its chain. Every answer is checked as the file provider checks files.
 */
export async function startVaultProvider (init: VaultProviderInit): Promise<IdentityProvider> {
  const clock = init.clock ?? systemClock
  const keys = await makeKeyDir(init.keyBase)
  const url = new URL(`/v1/${init.mount}/issue/${init.role}`, init.addr)
  const where = `${url.origin}/v1/${init.mount}/issue/${init.role}`
  const spiffeId = agentSpiffeId(init.trustDomain, init.name)
  return await renewingProvider('vault', clock, keys, async () => {
    const body = {
      common_name: init.name,
      uri_sans: spiffeId,
      ...(init.hosts.some((h) => isIP(h) === 0) ? { alt_names: init.hosts.filter((h) => isIP(h) === 0).join(',') } : {}),
      ...(init.hosts.some((h) => isIP(h) !== 0) ? { ip_sans: init.hosts.filter((h) => isIP(h) !== 0).join(',') } : {}),
      ttl: `${Math.round(init.ttlMs / 1000)}s`,
      private_key_format: 'pkcs8',
    }
    const data = await post(url, init, body, where)
    const str = (v: unknown, what: string): string => {
      if (typeof v !== 'string' || v === '') throw new MeshError('MESH_ERR_IDENTITY_PROVIDER', `Vault's answer from ${where} has no ${what}`, { details: { url: where } })
      return v
    }
    const keyPem = str(data.private_key, 'private_key')
    const chain = Array.isArray(data.ca_chain) ? data.ca_chain.filter((c): c is string => typeof c === 'string') : []
    const cas = [...new Set([str(data.issuing_ca, 'issuing_ca'), ...chain])]
    // Vault's certificate is the leaf alone: the intermediates it was issued through go with it
    // (TLS and admission present them, so peers need only the root), and the roots are the bundle.
    // With no root in Vault's answer, its CAs are the bundle, as they were.
    const roots = cas.filter(selfSigned)
    const certPem = [str(data.certificate, 'certificate'), ...(roots.length === 0 ? [] : cas.filter((c) => !selfSigned(c)))].join('\n') + '\n'
    const bundlePem = (roots.length === 0 ? cas : roots).join('\n') + '\n'
    const keyPath = await keys.write('svid.key', keyPem)
    return await checkIdentity({ certPem, keyPem, bundlePem }, { cert: `the certificate from ${where}`, key: `the key from ${where}`, bundle: `the CA chain from ${where}` }, keyPath, clock.now())
  })
}

/** One `issue` request; Vault's refusals become `MESH_ERR_IDENTITY_PROVIDER` with its status and errors. */
async function post (url: URL, init: VaultProviderInit, body: unknown, where: string): Promise<IssueData> {
  const payload = JSON.stringify(body)
  const fail = (why: string, details: Record<string, unknown> = {}): MeshError =>
    new MeshError('MESH_ERR_IDENTITY_PROVIDER', `Vault refused or failed to issue the SVID at ${where}: ${why}`, { details: { url: where, ...details } })
  const { status, text } = await new Promise<{ status: number, text: string }>((resolve, reject) => {
    const req = (url.protocol === 'https:' ? httpsRequest : httpRequest)(url, {
      method: 'POST',
      headers: { 'x-vault-token': init.token, 'content-type': 'application/json', 'content-length': Buffer.byteLength(payload) },
      signal: AbortSignal.timeout(10_000),
      ...(init.caCertPem === undefined ? {} : { ca: init.caCertPem }),
    }, (res) => {
      let text = ''
      res.setEncoding('utf8')
      res.on('data', (d: string) => {
        text += d
        if (text.length > MAX_ANSWER) res.destroy(new Error(`an answer over ${MAX_ANSWER} bytes`))
      })
      res.on('end', () => { resolve({ status: res.statusCode ?? 0, text }) })
      res.on('error', reject)
    })
    req.on('error', reject)
    req.end(payload)
  }).catch((err: Error) => { throw fail(err.message) })
  let json: { data?: IssueData, errors?: unknown }
  try {
    json = JSON.parse(text) as typeof json
  } catch {
    throw fail(`HTTP ${status}, and the body is not JSON`, { status })
  }
  if (status !== 200) {
    // Vault says why in `errors`: bounded, and stripped of control characters, before it is shown.
    const errors = Array.isArray(json.errors) ? json.errors.map((e) => String(e).replace(/[\x00-\x1f\x7f-\x9f]/g, ' ').slice(0, 300)).slice(0, 5) : []
    throw fail(`HTTP ${status}${errors.length > 0 ? `: ${errors.join('; ')}` : ''}`, { status, errors })
  }
  if (typeof json.data !== 'object' || json.data === null) throw fail('the answer holds no data', { status })
  return json.data
}

/** Whether a PEM certificate signed itself (a root); one that does not parse is not. */
function selfSigned (pem: string): boolean {
  try {
    const c = new X509Certificate(pem)
    return c.checkIssued(c) && c.verify(c.publicKey)
  } catch {
    return false
  }
}
