// Identity providers: "auto" (the local CA issues and renews) and "file" (certificate files,
// reloaded when they change), with real certificates, real files and a real mutual TLS handshake.
import { execFile } from 'node:child_process'
import { existsSync } from 'node:fs'
import { mkdtemp, readdir, rm, stat, writeFile } from 'node:fs/promises'
import { Agent as HttpsAgent, createServer, request } from 'node:https'
import type { AddressInfo } from 'node:net'
import { connect } from 'node:tls'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { promisify } from 'node:util'
import t from 'tap'
import { generateKeyPair } from '@libp2p/crypto/keys'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import { ManualClock } from '../../src/clock.ts'
import { startAutoProvider } from '../../src/identity/auto-provider.ts'
import { startFileProvider } from '../../src/identity/file-provider.ts'
import { LocalCa } from '../../src/identity/local-ca.ts'
import type { Identity } from '../../src/identity/provider.ts'
import { issueSvid } from '../../src/identity/svid.ts'
import { svidAdmitter } from '../../src/identity/admission.ts'
import { certsOf, checkProvider, identityFacts, pemBlocks, secureContextOf, tlsServer } from '../../src/identity/tls.ts'
import { generateKeys, privateKeyPem, serialNumber, x509 } from '../../src/identity/x509.ts'
import { caChain, issueThrough } from '../helpers/ca-chain.ts'
import { isMeshError } from '../../src/errors.ts'

const home = await mkdtemp(join(tmpdir(), 'mesh-providers-'))

/**
 * `p`, or a failure after `ms`. The provider's watches and timers do not keep a process alive
 * (an agent's server does), so a test waiting on them holds this timer.
 */
async function within<T> (p: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined
  return Promise.race([p, new Promise<never>((_resolve, reject) => { timer = setTimeout(() => { reject(new Error(`nothing within ${ms} ms`)) }, ms) })]).finally(() => { clearTimeout(timer) })
}
t.teardown(async () => { await rm(home, { recursive: true, force: true }) })

t.test('auto: an SVID bound to the peer ID at start, its key in /dev/shm (0600), renewed at half-life, removed on stop', async (t) => {
  const clock = new ManualClock()
  const libp2pKey = await generateKeyPair('Ed25519')
  const provider = await startAutoProvider({ home, trustDomain: 'acme.test', name: 'weather', hosts: ['127.0.0.1'], libp2pKey, ttlMs: 120_000, clock })
  const first = provider.current()
  t.equal(first.spiffeId, 'spiffe://acme.test/agent/weather')
  t.equal(first.facts.peerId, peerIdFromPrivateKey(libp2pKey).toString(), 'the SVID names the agent\'s peer ID')
  if (existsSync('/dev/shm')) t.ok(first.keyPath.startsWith('/dev/shm/mcp-mesh-'), `key in memory: ${first.keyPath}`)
  t.equal((await stat(first.keyPath)).mode & 0o777, 0o600, 'key 0600')
  t.equal((await stat(dirname(first.keyPath))).mode & 0o777, 0o700, 'its folder 0700')
  t.equal(clock.pending, 1, 'one renewal timer')

  const renewed = new Promise<Identity>((resolve) => { provider.onChange(resolve) })
  clock.advance(59_999)
  t.equal(provider.current(), first, 'not before half-life')
  clock.advance(1)
  const second = await renewed
  t.not(second.certPem, first.certPem, 'a new certificate')
  t.not(second.keyPem, first.keyPem, 'with a new key')
  t.equal(provider.current(), second)
  t.equal(second.keyPath, first.keyPath, 'written over the old key')
  t.same(await readdir(dirname(first.keyPath)), ['svid.key'], 'and nothing else left in the folder')
  t.equal(second.facts.notAfter.getTime(), clock.now() + 120_000, 'valid for a full lifetime from the renewal')

  await provider.stop()
  t.notOk(existsSync(dirname(first.keyPath)), 'the key folder is removed on stop')
  t.equal(clock.pending, 0, 'no timer left')
})

/** Writes an SVID issued by `ca` to `dir` as the file provider reads it. */
async function writeSvid (ca: LocalCa, dir: string, name: string, options: { now?: number, ttlMs?: number } = {}): Promise<{ cert: string, key: string, bundle: string }> {
  return await writeIdentity(dir, await issueSvid(ca, { name, hosts: ['127.0.0.1'], ...options }))
}

/** Writes an SVID's PEMs to `dir` as the file provider reads them. */
async function writeIdentity (dir: string, svid: { certPem: string, keyPem: string, bundlePem: string }): Promise<{ cert: string, key: string, bundle: string }> {
  const files = { cert: join(dir, 'svid.pem'), key: join(dir, 'svid.key'), bundle: join(dir, 'bundle.pem') }
  await writeFile(files.cert, svid.certPem)
  await writeFile(files.key, svid.keyPem, { mode: 0o600 })
  await writeFile(files.bundle, svid.bundlePem)
  return files
}

t.test('file: read and checked at start, read again when the files change, a bad rewrite ignored', async (t) => {
  const ca = await LocalCa.open(home, 'acme.test', { create: true })
  const dir = await mkdtemp(join(home, 'files-'))
  const files = await writeSvid(ca, dir, 'hotels')
  const provider = await startFileProvider({ certPath: files.cert, keyPath: files.key, bundlePath: files.bundle })
  t.teardown(async () => provider.stop())
  t.equal(provider.current().spiffeId, 'spiffe://acme.test/agent/hotels')
  t.equal(provider.current().keyPath, files.key, 'the key stays where the operator put it')

  const changed = new Promise<Identity>((resolve) => { provider.onChange(resolve) })
  await writeSvid(ca, dir, 'hotels-v2')
  t.equal((await within(changed, 10_000)).spiffeId, 'spiffe://acme.test/agent/hotels-v2', 'a rewrite of the files is picked up')

  // A key that is not the certificate's: refused, and the last good identity kept. Then a good
  // rewrite: the first identity emitted after the bad one is the good one, so the bad one was
  // read (it came first) and not taken.
  const before = provider.current()
  const seen: string[] = []
  provider.onChange((i) => { seen.push(i.spiffeId) })
  await writeFile(files.key, (await issueSvid(ca, { name: 'x', hosts: [] })).keyPem)
  await within(new Promise<void>((resolve) => { setTimeout(resolve, 1_000) }), 2_000)
  t.equal(provider.current(), before, 'a key that does not match is not taken')
  const fixed = new Promise<Identity>((resolve) => { provider.onChange(resolve) })
  await writeSvid(ca, dir, 'hotels-v3')
  await within(fixed, 10_000)
  t.same(seen, ['spiffe://acme.test/agent/hotels-v3'], 'only the good rewrite was taken')
})

t.test('file: each unusable identity is refused at start, naming the file and the reason', async (t) => {
  const ca = await LocalCa.open(home, 'acme.test', { create: true })
  const foreign = await LocalCa.open(home, 'other.test', { create: true })
  const cases: Array<[string, (dir: string) => Promise<{ cert: string, key: string, bundle: string }>, RegExp]> = [
    ['expired', async (dir) => writeSvid(ca, dir, 'old', { now: Date.now() - 7_200_000, ttlMs: 3_600_000 }), /not now/],
    ['signed by a CA not in the bundle', async (dir) => {
      const f = await writeSvid(ca, dir, 'stray')
      await writeFile(f.bundle, foreign.pem)
      return f
    }, /not signed by a CA of/],
    ['a key that is not the certificate\'s', async (dir) => {
      const f = await writeSvid(ca, dir, 'mismatch')
      await writeFile(f.key, (await issueSvid(ca, { name: 'y', hosts: [] })).keyPem)
      return f
    }, /is not the key of/],
    ['a CA certificate instead of an SVID', async (dir) => {
      const f = await writeSvid(ca, dir, 'ca')
      await writeFile(f.cert, ca.pem)
      return f
    }, /not a valid X.509-SVID/],
    ['a missing file', async (dir) => ({ ...(await writeSvid(ca, dir, 'gone')), key: join(dir, 'nope.key') }), /cannot read .*nope\.key/],
    ['an SVID that cannot call (no clientAuth usage)', async (dir) => {
      const keys = await generateKeys()
      const cert = await ca.sign({
        serialNumber: serialNumber(),
        subject: 'CN=server-only',
        notBefore: new Date(Date.now() - 60_000),
        notAfter: new Date(Date.now() + 3600_000),
        publicKey: keys.publicKey,
        extensions: [
          new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true),
          new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.serverAuth]),
          new x509.SubjectAlternativeNameExtension([{ type: 'url', value: 'spiffe://acme.test/agent/server-only' }]),
        ],
      })
      return writeIdentity(dir, { certPem: cert.toString('pem'), keyPem: await privateKeyPem(keys.privateKey), bundlePem: ca.pem })
    }, /not a valid X.509-SVID: extended key usage must include clientAuth/],
    // Two chains alike to the names: only the signature tells the intermediates apart.
    ['an intermediate not signed by the bundle\'s CA', async (dir) => {
      const ours = await caChain(await mkdtemp(join(home, 'ours-')), 'acme.test')
      const theirs = await caChain(await mkdtemp(join(home, 'theirs-')), 'acme.test')
      return writeIdentity(dir, { ...(await issueThrough(theirs, { name: 'forged', hosts: [] })), bundlePem: ours.rootPem })
    }, /not signed by a CA of .*bundle\.pem/],
    ['an SVID of an intermediate, without the intermediate', async (dir) => {
      const chain = await caChain(await mkdtemp(join(home, 'chain-')), 'acme.test')
      const svid = await issueSvid(chain.intermediate, { name: 'alone', hosts: [] })
      return writeIdentity(dir, { ...svid, bundlePem: chain.rootPem })
    }, /not signed by a CA of .*bundle\.pem/],
  ]
  for (const [what, make, message] of cases) {
    const f = await make(await mkdtemp(join(home, 'bad-')))
    const err = await startFileProvider({ certPath: f.cert, keyPath: f.key, bundlePath: f.bundle }).catch((e: unknown) => e)
    t.ok(isMeshError(err, 'MESH_ERR_IDENTITY_INVALID'), `${what}: MESH_ERR_IDENTITY_INVALID`)
    t.match((err as Error).message, message, `${what}: says why`)
  }
})

t.test('file: an SVID issued through an intermediate, the root alone in the bundle: accepted, and an agent serves and calls with it over mutual TLS and is admitted', async (t) => {
  const chain = await caChain(await mkdtemp(join(home, 'chain-')), 'chain.test')
  const start = async (name: string): Promise<Identity> => {
    const svid = await issueThrough(chain, { name, hosts: ['127.0.0.1'] })
    // The blocks with no line break between them (a file made with `cat leaf.pem int.pem`).
    const files = await writeIdentity(await mkdtemp(join(home, `${name}-`)), { ...svid, certPem: pemBlocks(svid.certPem).join('') })
    const provider = await startFileProvider({ certPath: files.cert, keyPath: files.key, bundlePath: files.bundle })
    t.teardown(async () => provider.stop())
    return provider.current()
  }
  const server = await start('hotels')
  const client = await start('caller')
  t.equal(server.spiffeId, 'spiffe://chain.test/agent/hotels')
  t.same(certsOf(server.certPem).map((c) => c.subject), ['O=mcp-mesh\nCN=hotels', 'CN=test intermediate for chain.test'], 'the identity keeps the intermediate, to send it')

  // The agent's own TLS: its endpoint (tlsServer) and its calls (secureContextOf, checkProvider).
  const refused: string[] = []
  const tls = tlsServer({ identity: server, trustDomain: 'chain.test', onRefused: (reason, detail) => { refused.push(`${reason}: ${detail}`) } })
  const https = tls.createServer((req, res) => { res.end(tls.authenticate(req)?.clientId ?? 'nobody') })
  await new Promise<void>((resolve) => https.listen(0, '127.0.0.1', resolve))
  t.teardown(() => { https.close() })
  const expected = { spiffeId: server.spiffeId, keyHash: identityFacts(server).keyHash }
  const body = await new Promise<string>((resolve, reject) => {
    const agent = new HttpsAgent({ secureContext: secureContextOf(client), checkServerIdentity: checkProvider(expected, 'chain.test') })
    const req = request({ host: '127.0.0.1', port: (https.address() as AddressInfo).port, path: '/', agent }, (res) => {
      let b = ''
      res.on('data', (d: Buffer) => { b += d.toString() })
      res.on('end', () => { resolve(b) })
    })
    req.on('error', reject)
    req.end()
  })
  t.equal(body, 'spiffe://chain.test/agent/caller', 'the call went through, and the endpoint read the caller\'s SPIFFE ID')
  t.same(refused, [], 'nothing refused')

  // Admission proves the whole chain: a peer holding only the root admits it.
  const admitter = svidAdmitter({ mesh: 'm', current: () => client, bundleOf: (td) => td === 'chain.test' ? chain.rootPem : undefined })
  t.match(admitter.check(svidAdmitter({ mesh: 'm', current: () => server, bundleOf: () => undefined }).prove('P', 'V'), 'P', 'V'), { spiffeId: server.spiffeId })
})

t.test('the file, vault and spire providers load no X.509 library (it costs an agent about 9 MB for good)', async (t) => {
  // A fresh process, so nothing this test file loaded counts: every module resolved is logged.
  const script = `
    import { registerHooks } from 'node:module'
    const seen = []
    registerHooks({ resolve (spec, ctx, next) { const r = next(spec, ctx); seen.push(r.url); return r } })
    for (const p of ['file', 'vault', 'spire']) await import(new URL('../../src/identity/' + p + '-provider.ts', ${JSON.stringify(import.meta.url)}).href)
    console.log(JSON.stringify(seen))`
  const { stdout } = await promisify(execFile)(process.execPath, ['--input-type=module', '-e', script])
  const seen = JSON.parse(stdout) as string[]
  t.ok(seen.some((u) => u.endsWith('/src/identity/file-provider.ts')), 'the providers were loaded')
  t.same(seen.filter((u) => /@peculiar|reflect-metadata|\/identity\/(x509|svid)\.ts$/.test(u)), [], 'and neither @peculiar/x509 nor what loads it')
})

t.test('two agents\' SVIDs complete a mutual TLS 1.3 handshake, and each side reads the other\'s SPIFFE ID', async (t) => {
  const server = await startAutoProvider({ home, trustDomain: 'acme.test', name: 'provider', hosts: ['127.0.0.1'], libp2pKey: await generateKeyPair('Ed25519') })
  const client = await startAutoProvider({ home, trustDomain: 'acme.test', name: 'caller', hosts: ['127.0.0.1'], libp2pKey: await generateKeyPair('Ed25519') })
  t.teardown(async () => { await server.stop(); await client.stop() })
  const s = server.current()
  let seenByServer: string | undefined
  const https = createServer({ cert: s.certPem, key: s.keyPem, ca: s.bundlePem, requestCert: true, rejectUnauthorized: true, minVersion: 'TLSv1.3' }, (req, res) => {
    seenByServer = (req.socket as import('node:tls').TLSSocket).getPeerX509Certificate()?.subjectAltName
    res.end('ok')
  })
  await new Promise<void>((resolve) => https.listen(0, '127.0.0.1', resolve))
  t.teardown(() => { https.close() })
  const port = (https.address() as { port: number }).port
  const c = client.current()
  const socket = connect({ host: '127.0.0.1', port, cert: c.certPem, key: c.keyPem, ca: c.bundlePem, servername: undefined, checkServerIdentity: () => undefined })
  await new Promise<void>((resolve, reject) => { socket.once('secureConnect', resolve); socket.once('error', reject) })
  t.ok(socket.authorized, `the server's chain verifies against the bundle (${String(socket.authorizationError ?? 'ok')})`)
  t.equal(socket.getProtocol(), 'TLSv1.3')
  t.match(socket.getPeerX509Certificate()?.subjectAltName, 'URI:spiffe://acme.test/agent/provider')
  socket.write('GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n')
  const body = await new Promise<string>((resolve) => { let b = ''; socket.on('data', (d: Buffer) => { b += d.toString() }); socket.on('end', () => { resolve(b) }) })
  t.match(body, /ok$/)
  t.match(seenByServer, 'URI:spiffe://acme.test/agent/caller', 'the server reads the caller\'s SPIFFE ID')

  // Without a certificate, the handshake fails: the server requires one.
  const anonymous = connect({ host: '127.0.0.1', port, ca: c.bundlePem, checkServerIdentity: () => undefined })
  const outcome = await new Promise<string>((resolve) => {
    anonymous.once('error', (err) => { resolve(err.message) })
    anonymous.once('secureConnect', () => { anonymous.write('GET / HTTP/1.1\r\nHost: x\r\n\r\n'); anonymous.once('data', () => { resolve('served') }); anonymous.once('end', () => { resolve('closed') }) })
  })
  t.not(outcome, 'served', `no certificate, nothing served (${outcome})`)
})
