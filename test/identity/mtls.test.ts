// Mutual TLS between real agents: real libp2p, real HTTPS with certificates from a real local CA,
// real handshakes. Who may call, who may serve, and what each side learns of the other.
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { Agent as HttpsAgent, request } from 'node:https'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t from 'tap'
import { z } from 'zod'
import { createMeshNode } from '../../src/node.ts'
import type { MeshNode } from '../../src/node.ts'
import type { MeshNodeOptionsInput } from '../../src/config.ts'
import { LocalCa } from '../../src/identity/local-ca.ts'
import { issueSvid } from '../../src/identity/svid.ts'
import { generateKeys, privateKeyPem, serialNumber, x509 } from '../../src/identity/x509.ts'
import { checkProvider, keyHashOf, tlsServer } from '../../src/identity/tls.ts'
import { X509Certificate } from 'node:crypto'
import { testNodeOptions } from '../helpers/mesh.ts'
import { waitFor } from '../helpers/wait.ts'

const MESH = `mtls-${process.pid}`
// Renewal under load (a minute of calls) is in renewal-load.test.ts.
t.setTimeout(120_000)
const home = await mkdtemp(join(tmpdir(), 'mesh-mtls-'))
const otherHome = await mkdtemp(join(tmpdir(), 'mesh-mtls-other-'))
t.teardown(async () => {
  await rm(home, { recursive: true, force: true })
  await rm(otherHome, { recursive: true, force: true })
})

const warnings: string[] = []
process.on('warning', (w) => { warnings.push(String((w as Error & { code?: string }).code)) })
const nodes: MeshNode[] = []
t.teardown(async () => { await Promise.all(nodes.map(async (n) => n.stop())) })

const mtls = (extra: Partial<MeshNodeOptionsInput> = {}): Partial<MeshNodeOptionsInput> => ({ home, tls: { mode: 'strict' }, ...extra })

async function start (name: string, extra: Partial<MeshNodeOptionsInput>, define: (n: MeshNode) => void = () => {}): Promise<MeshNode> {
  const n = createMeshNode(testNodeOptions(MESH, name, extra))
  define(n)
  nodes.push(n)
  await n.start()
  await n.ready()
  return n
}

const seen: Array<string | undefined> = []
const provider = await start('weather', mtls(), (n) => n.tool('get_weather', {
  capability: 'weather',
  input: { city: z.string() },
}, async ({ city }, _deps, ctx) => {
  seen.push(ctx.authInfo?.clientId)
  return { city, sky: 'clear' }
}))
const join_ = { bootstrap: provider.gossip.addrs }

/** An HTTPS POST of `tools/list` to an endpoint with these TLS options: the status and body, or the error. */
async function post (tls: { cert?: string, key?: string, ca?: string }, url = provider.url): Promise<{ status?: number, body?: string, error?: string }> {
  const u = new URL(url)
  return new Promise((resolve) => {
    const req = request({ host: u.hostname, port: u.port, path: u.pathname, method: 'POST', rejectUnauthorized: false, ...tls, headers: { 'content-type': 'application/json', accept: 'application/json, text/event-stream' } }, (res) => {
      let body = ''
      res.setEncoding('utf8')
      res.on('data', (d: string) => { body += d })
      res.on('end', () => { resolve({ status: res.statusCode, body }) })
    })
    req.on('error', (err) => { resolve({ error: (err as NodeJS.ErrnoException).code ?? err.message }) })
    req.end(JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'tools/list', params: {} }))
  })
}

t.test('the advert endorses the SPIFFE ID and key the endpoint serves; the endpoint is HTTPS', async (t) => {
  const id = provider.gossip.advert?.identity
  t.ok(id !== undefined, 'the advert carries an identity')
  t.equal(id!.id, 'spiffe://mcp-mesh.local/agent/weather')
  t.ok(provider.url.startsWith('https://'), provider.url)
  const served = await new Promise<X509Certificate>((resolve, reject) => {
    const u = new URL(provider.url)
    const req = request({ host: u.hostname, port: u.port, method: 'GET', path: '/healthz', rejectUnauthorized: false }, (res) => {
      const cert = (res.socket as import('node:tls').TLSSocket).getPeerX509Certificate()!
      res.resume()
      resolve(cert)
    })
    req.on('error', reject)
    req.end()
  }).catch(() => undefined)
  // Without a client certificate the server ends the connection before HTTP: nothing to read.
  t.equal(served, undefined, 'a client without a certificate is served nothing, not even /healthz')
  t.ok(id!.exp > Date.now() + 23 * 3600_000, 'valid for about 24 h')
})

t.test('an agent with an SVID of the same trust domain calls; the provider sees its SPIFFE ID', async (t) => {
  const caller = await start('planner', mtls(join_))
  await waitFor('the caller to see weather', () => caller.explain('weather').ranked.length > 0)
  const out = await caller.call<{ sky: string }>('weather', { city: 'Lisbon' })
  t.equal(out.sky, 'clear')
  t.equal(seen.at(-1), 'spiffe://mcp-mesh.local/agent/planner', 'ctx.authInfo.clientId is the caller\'s SPIFFE ID')
})

t.test('clients the endpoint refuses before a byte of HTTP: no certificate, another CA', async (t) => {
  const before = provider.endpointStats.dropped['tls-unauthorized'] ?? 0
  const none = await post({})
  t.equal(none.status, undefined, `no certificate: not served (${none.error})`)
  const ca = await LocalCa.open(otherHome, 'mcp-mesh.local', { create: true })
  const foreign = await issueSvid(ca, { name: 'intruder', hosts: ['127.0.0.1'] })
  const other = await post({ cert: foreign.certPem, key: foreign.keyPem })
  t.equal(other.status, undefined, `a certificate of another CA with our trust domain's name: not served (${other.error})`)
  await waitFor('both refusals counted', () => (provider.endpointStats.dropped['tls-unauthorized'] ?? 0) >= before + 2)
  t.ok(seen.every((s) => s !== 'spiffe://mcp-mesh.local/agent/intruder'), 'the intruder ran nothing')
  const own = await LocalCa.open(home, 'mcp-mesh.local', { create: false })
  const good = await issueSvid(own, { name: 'tester', hosts: ['127.0.0.1'] })
  t.equal((await post({ cert: good.certPem, key: good.keyPem })).status, 200, 'the same request with an SVID of our CA is served')
})

t.test('an agent of another CA, or one with TLS off, is not admitted to the mesh: callers never see its tools', async (t) => {
  const refused = (): number => provider.gossip.stats.refused.admission
  const before = refused()
  // Not started with `start`: they never complete a sync, so they are never ready.
  const impostor = createMeshNode(testNodeOptions(MESH, 'impostor', { ...mtls(join_), home: otherHome }))
  impostor.tool('fake_weather', { capability: 'stormy' }, async () => ({ sky: 'storm' }))
  const plain = createMeshNode(testNodeOptions(MESH, 'plain', join_))
  plain.tool('plain_weather', { capability: 'drizzle' }, async () => ({ sky: 'drizzle' }))
  nodes.push(impostor, plain)
  await Promise.all([impostor.start(), plain.start()])
  await waitFor('the provider to refuse both (the one with TLS off after the 5 s admission timeout)', () => refused() >= before + 2, 20_000)
  const caller = await start('careful', mtls(join_))
  await t.rejects(caller.call('stormy'), { code: 'MESH_ERR_CALL_NO_PROVIDER' }, 'another CA: its advert never reached the mesh')
  await t.rejects(caller.call('drizzle'), { code: 'MESH_ERR_CALL_NO_PROVIDER' }, 'TLS off: nor did this one')
  t.notOk(caller.members().some((m) => m.advert.name === 'impostor' || m.advert.name === 'plain'), 'the caller\'s replica holds neither')
  t.same([...impostor.members()].map((m) => m.advert.name), ['impostor'], 'the impostor read no topology')
  t.ok(plain.url.startsWith('http://'))
  t.ok(warnings.includes('MESH_TLS_OFF'), 'an agent started with TLS off warns')
})

t.test('checkProvider: the SPIFFE ID and the key must be the ones the advert endorses', async (t) => {
  const ca = await LocalCa.open(home, 'mcp-mesh.local', { create: false })
  const svid = await issueSvid(ca, { name: 'weather', hosts: ['127.0.0.1'] })
  const cert = new X509Certificate(svid.certPem)
  const peer = { raw: cert.raw, fingerprint256: cert.fingerprint256, subjectaltname: cert.subjectAltName, subject: {} } as unknown as import('node:tls').PeerCertificate
  const keyHash = keyHashOf(cert.publicKey.export({ type: 'spki', format: 'der' }))
  t.equal(checkProvider({ spiffeId: 'spiffe://mcp-mesh.local/agent/weather', keyHash }, 'mcp-mesh.local')('127.0.0.1', peer), undefined, 'as endorsed')
  t.match(checkProvider({ spiffeId: 'spiffe://mcp-mesh.local/agent/payments', keyHash }, 'mcp-mesh.local')('127.0.0.1', peer), { code: 'MESH_ERR_CALL_UNTRUSTED', message: /advert names spiffe:\/\/mcp-mesh.local\/agent\/payments/ })
  t.match(checkProvider({ spiffeId: 'spiffe://mcp-mesh.local/agent/weather', keyHash: 'A'.repeat(43) }, 'mcp-mesh.local')('127.0.0.1', peer), { code: 'MESH_ERR_CALL_UNTRUSTED', message: /key is not the one/ })
  t.match(checkProvider(undefined, 'partner.example')('127.0.0.1', peer), { code: 'MESH_ERR_CALL_UNTRUSTED', message: /not of our trust domain/ })
  t.match(checkProvider({ spiffeId: 'spiffe://mcp-mesh.local/agent/weather', keyHash }, 'mcp-mesh.local')('10.9.9.9', peer), { code: 'MESH_ERR_CALL_UNTRUSTED', message: /does not name the host 10.9.9.9/ }, 'served at a host its SVID does not name')
})

t.test('an advert whose endpoint host is not in its SVID is not called', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'mesh-mtls-elsewhere-'))
  t.teardown(async () => { await rm(dir, { recursive: true, force: true }) })
  const svid = await issueSvid(await LocalCa.open(home, 'mcp-mesh.local', { create: false }), { name: 'elsewhere', hosts: ['10.9.9.9'] })
  await writeFile(join(dir, 'svid.key'), svid.keyPem, { mode: 0o600 })
  await writeFile(join(dir, 'svid.pem'), svid.certPem)
  await writeFile(join(dir, 'bundle.pem'), svid.bundlePem)
  const files = { certFile: join(dir, 'svid.pem'), keyFile: join(dir, 'svid.key'), bundleFile: join(dir, 'bundle.pem') }
  let ran = 0
  await start('elsewhere', { ...join_, home, tls: { mode: 'strict', provider: 'file', ...files } }, (n) => n.tool('far', { capability: 'far' }, async () => { ran++; return {} }))
  const caller = await start('far-caller', mtls(join_))
  await waitFor('the caller to see far', () => caller.explain('far').ranked.length > 0)
  await t.rejects(caller.call('far'), { code: 'MESH_ERR_CALL_UNTRUSTED', message: /does not name the host 127.0.0.1/ })
  t.equal(ran, 0, 'nothing ran')
})

t.test('file provider: certificates rewritten on disk are served to new connections and advertised, without a failed call', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'mesh-mtls-files-'))
  t.teardown(async () => { await rm(dir, { recursive: true, force: true }) })
  const ca = await LocalCa.open(home, 'mcp-mesh.local', { create: false })
  const write = async (): Promise<void> => {
    const svid = await issueSvid(ca, { name: 'filed', hosts: ['127.0.0.1'] })
    await writeFile(join(dir, 'svid.key'), svid.keyPem, { mode: 0o600 })
    await writeFile(join(dir, 'svid.pem'), svid.certPem)
    await writeFile(join(dir, 'bundle.pem'), svid.bundlePem)
  }
  await write()
  const files = { certFile: join(dir, 'svid.pem'), keyFile: join(dir, 'svid.key'), bundleFile: join(dir, 'bundle.pem') }
  const filed = await start('filed', { ...join_, home, tls: { mode: 'strict', provider: 'file', ...files } }, (n) => n.tool('echo', { capability: 'echo', input: { n: z.number() } }, async ({ n }) => ({ n })))
  const caller = await start('echo-caller', mtls(join_))
  await waitFor('the caller to see echo', () => caller.explain('echo').ranked.length > 0)
  t.same(await caller.call('echo', { n: 1 }), { n: 1 })
  const firstKey = filed.gossip.advert!.identity!.key
  await write()
  await waitFor('the new certificate advertised', () => filed.gossip.advert!.identity!.key !== firstKey)
  await waitFor('the caller to hear of it', () => caller.members().find((m) => m.advert.name === 'filed')?.advert.identity?.key !== firstKey)
  t.same(await caller.call('echo', { n: 2 }), { n: 2 }, 'called again, verified against the new key')
  t.equal(caller.stats.failovers, 0, 'no call was refused')
})

t.test('authorization: a tool\'s allow-list of SPIFFE ID patterns; others are refused by name, counted, and not shown the tool', async (t) => {
  let paid = 0
  const bank = await start('bank', mtls(join_), (n) => n
    .tool('pay', { capability: 'pay', allow: ['spiffe://mcp-mesh.local/team/payments/*', 'spiffe://mcp-mesh.local/agent/shop'] }, async () => { paid++; return { ok: true } })
    .tool('rates', { capability: 'rates', allow: ['spiffe://mcp-mesh.local/agent/*'] }, async () => ({ eur: 1 })))
  const shop = await start('shop', mtls(join_))
  const stranger = await start('stranger', mtls(join_))
  await waitFor('both callers to see pay', () => shop.explain('pay').ranked.length > 0 && stranger.explain('pay').ranked.length > 0)
  t.same(await shop.call('pay'), { ok: true }, 'an exact SPIFFE ID on the list calls')
  await t.rejects(stranger.call('pay'), { code: 'MESH_ERR_CALL_NOT_AUTHORIZED', message: /spiffe:\/\/mcp-mesh.local\/agent\/stranger may not call pay on agent bank/ })
  t.equal(paid, 1, 'the refused call ran nothing')
  t.equal(bank.endpointStats.dropped['not-authorized'], 1, 'and was counted')
  t.same(await stranger.call('rates'), { eur: 1 }, 'a prefix pattern (/agent/*) lets any agent of the domain call')

  const ca = await LocalCa.open(home, 'mcp-mesh.local', { create: false })
  const names = async (name: string): Promise<string[]> => {
    const svid = await issueSvid(ca, { name, hosts: [] })
    const r = await post({ cert: svid.certPem, key: svid.keyPem }, bank.url)
    return ((JSON.parse(r.body!) as { result: { tools: Array<{ name: string }> } }).result.tools).map((x) => x.name).sort()
  }
  t.same(await names('shop'), ['pay', 'rates'], 'tools/list shows the shop both tools')
  t.same(await names('stranger'), ['rates'], 'and the stranger only the one it may call')
  t.throws(() => createMeshNode(testNodeOptions(MESH, 'bad-allow', mtls())).tool('x', { allow: ['https://not-spiffe'] }, () => ({})), { code: 'MESH_ERR_TOOL_INVALID', message: /allow\[0\]/ }, 'a bad pattern fails at registration')
})

t.test('a connection is not reused past its certificate\'s expiry: answers say Connection: close from 5 s before', async (t) => {
  const ca = await LocalCa.open(home, 'mcp-mesh.local', { create: false })
  const server = await issueSvid(ca, { name: 'expiring', hosts: ['127.0.0.1'], ttlMs: 12_000 })
  const client = await issueSvid(ca, { name: 'client', hosts: [] })
  const identity = { spiffeId: server.spiffeId, certPem: server.certPem, keyPem: server.keyPem, keyPath: '', bundlePem: server.bundlePem, facts: {} as never }
  const tls = tlsServer({ identity, trustDomain: 'mcp-mesh.local', onRefused: () => {} })
  const s = tls.createServer((_req, res) => { res.end('ok') })
  s.keepAliveTimeout = 60_000 // the same connection throughout, as the endpoint keeps it (65 s)
  await new Promise<void>((resolve) => s.listen(0, '127.0.0.1', resolve))
  t.teardown(() => { s.close() })
  const agent = new HttpsAgent({ keepAlive: true, maxSockets: 1, cert: client.certPem, key: client.keyPem, ca: client.bundlePem, checkServerIdentity: () => undefined })
  t.teardown(() => { agent.destroy() })
  const get = async (): Promise<string | undefined> => new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port: (s.address() as import('node:net').AddressInfo).port, path: '/', agent }, (res) => {
      res.resume()
      res.on('end', () => { resolve(res.headers.connection) })
    })
    req.on('error', reject)
    req.end()
  })
  t.equal(await get(), 'keep-alive', 'kept alive while the certificate has more than 5 s left')
  // X.509 keeps whole seconds: the certificate has 11 to 12 s left at the first call, so 5 s
  // before its expiry comes 6 to 7 s after the handshake (a wide margin for the first call on a
  // busy machine); the second call comes 8 s after the first.
  await new Promise((resolve) => setTimeout(resolve, 8_000))
  t.equal(await get(), 'close', 'then the answer closes the connection')
})

t.test('the endpoint also refuses, unserved and counted: an expired client SVID, and one with an unknown critical extension', async (t) => {
  const ca = await LocalCa.open(home, 'mcp-mesh.local', { create: false })
  const before = provider.endpointStats.dropped['tls-unauthorized'] ?? 0
  // Issued two hours ago for one hour.
  const expired = await issueSvid(ca, { name: 'late', hosts: [], ttlMs: 3600_000, now: Date.now() - 7200_000 })
  const r1 = await post({ cert: expired.certPem, key: expired.keyPem })
  t.equal(r1.status, undefined, `expired: not served (${r1.error})`)
  const keys = await generateKeys()
  const odd = await ca.sign({
    serialNumber: serialNumber(),
    subject: 'CN=odd',
    notBefore: new Date(Date.now() - 60_000),
    notAfter: new Date(Date.now() + 3600_000),
    publicKey: keys.publicKey,
    extensions: [
      new x509.BasicConstraintsExtension(false, undefined, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true),
      new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.serverAuth, x509.ExtendedKeyUsage.clientAuth]),
      new x509.SubjectAlternativeNameExtension([{ type: 'url', value: 'spiffe://mcp-mesh.local/agent/odd' }]),
      new x509.Extension('1.3.6.1.4.1.99999.1', true, new Uint8Array([0x05, 0x00])),
    ],
  })
  const r2 = await post({ cert: odd.toString('pem'), key: await privateKeyPem(keys.privateKey) })
  t.equal(r2.status, undefined, `an unknown critical extension: not served (${r2.error})`)
  await waitFor('both refusals counted', () => (provider.endpointStats.dropped['tls-unauthorized'] ?? 0) >= before + 2)
  t.notOk(seen.includes('spiffe://mcp-mesh.local/agent/late') || seen.includes('spiffe://mcp-mesh.local/agent/odd'), 'neither ran anything')
})
