// A Vault PKI server for tests, built from Vault's published HTTP API for the PKI secrets engine
// ("Generate Certificate and Key": POST /v1/<mount>/issue/<role>), since Vault itself cannot run
// here. Faithful where the mesh depends on it: the X-Vault-Token header is required (403
// {"errors":["permission denied"]} without it or with a wrong one), an unknown role is a 400, a
// URI SAN the role does not allow is a 400, `ttl` is honoured, and the answer has Vault's shape
// (data.certificate, private_key, private_key_type, issuing_ca, ca_chain, serial_number,
// expiration in Unix seconds). Certificates come from a real local CA.
import { createServer } from 'node:http'
import type { AddressInfo } from 'node:net'
import { X509Certificate } from 'node:crypto'
import type { LocalCa } from '../../src/identity/local-ca.ts'
import { issueSvid } from '../../src/identity/svid.ts'

/** A running test Vault: its address, what it was asked, and `close()`. */
export interface TestVault {
  addr: string
  /** Every issue request: the role, the token it carried, its JSON body. */
  requests: Array<{ role: string, token: string | undefined, body: Record<string, unknown> }>
  close(): Promise<void>
}

const DURATION = /^(\d+)(s|m|h)?$/

/** Starts a Vault PKI engine at `mount` with one role, issuing from `ca` for `spiffe://<ca domain>/agent/*`. */
export async function startTestVault (ca: LocalCa, options: { token: string, mount?: string, role?: string, rootPem?: string }): Promise<TestVault> {
  const mount = options.mount ?? 'pki'
  const role = options.role ?? 'mcp-mesh'
  const requests: TestVault['requests'] = []
  const reply = (res: import('node:http').ServerResponse, status: number, body: unknown): void => {
    res.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify(body))
  }
  const server = createServer((req, res) => {
    let raw = ''
    req.setEncoding('utf8')
    req.on('data', (d: string) => { raw += d })
    req.on('end', () => {
      void (async () => {
        const m = (req.url ?? '').match(new RegExp(`^/v1/${mount}/issue/([^/?]+)$`))
        if (req.method !== 'POST' && req.method !== 'PUT') { reply(res, 405, { errors: [] }); return }
        const token = req.headers['x-vault-token'] as string | undefined
        if (token !== options.token) { reply(res, 403, { errors: ['permission denied'] }); return }
        if (m === null) { reply(res, 404, { errors: [] }); return }
        let body: Record<string, unknown>
        try {
          body = JSON.parse(raw === '' ? '{}' : raw) as Record<string, unknown>
        } catch {
          reply(res, 400, { errors: ['failed to parse JSON input: invalid character'] })
          return
        }
        requests.push({ role: m[1], token, body })
        if (m[1] !== role) { reply(res, 400, { errors: [`unknown role: ${m[1]}`] }); return }
        const uri = String(body.uri_sans ?? '')
        const name = uri.startsWith(`spiffe://${ca.trustDomain}/agent/`) ? uri.slice(`spiffe://${ca.trustDomain}/agent/`.length) : undefined
        if (name === undefined || name.includes('/')) { reply(res, 400, { errors: [`URI Subject Alternative Names ${uri} not allowed by this role`] }); return }
        const ttl = String(body.ttl ?? '72h').match(DURATION)
        if (ttl === null) { reply(res, 400, { errors: [`error parsing ttl: ${String(body.ttl)}`] }); return }
        const ttlMs = Number(ttl[1]) * ({ s: 1, m: 60, h: 3600 } as Record<string, number>)[ttl[2] ?? 's'] * 1000
        const hosts = [...String(body.alt_names ?? '').split(','), ...String(body.ip_sans ?? '').split(',')].map((h) => h.trim()).filter((h) => h !== '')
        const svid = await issueSvid(ca, { name, hosts, ttlMs })
        const cert = new X509Certificate(svid.certPem)
        reply(res, 200, {
          request_id: crypto.randomUUID(),
          lease_id: '',
          renewable: false,
          lease_duration: 0,
          data: {
            certificate: svid.certPem.trim(),
            issuing_ca: ca.pem.trim(),
            // An intermediate issuer's chain goes up to the root, as Vault's ca_chain does.
            ca_chain: [ca.pem.trim(), ...(options.rootPem === undefined ? [] : [options.rootPem.trim()])],
            private_key: svid.keyPem.trim(),
            private_key_type: 'ec',
            serial_number: cert.serialNumber.match(/.{2}/g)!.join(':').toLowerCase(),
            expiration: Math.floor(Date.parse(cert.validTo) / 1000),
          },
          wrap_info: null,
          warnings: null,
          auth: null,
        })
      })()
    })
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  return {
    addr: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    requests,
    close: async () => { await new Promise<void>((resolve) => { server.close(() => { resolve() }); server.closeAllConnections() }) },
  }
}
