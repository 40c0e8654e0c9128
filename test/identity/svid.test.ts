// The local CA and the X.509-SVIDs it issues: real P-256 keys and certificates made at test time,
// checked against the SPIFFE rules by our own checker and by OpenSSL.
import { execFile } from 'node:child_process'
import { chmod, mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { promisify } from 'node:util'
import t from 'tap'
import { generateKeyPair } from '@libp2p/crypto/keys'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import { LIBP2P_EXTENSION_OID, libp2pExtensionValue } from '../../src/identity/libp2p-extension.ts'
import { LocalCa } from '../../src/identity/local-ca.ts'
import { agentSpiffeId, parseSpiffeId } from '../../src/identity/spiffe-id.ts'
import { checkSvid, issueSvid } from '../../src/identity/svid.ts'
import { generateKeys, serialNumber, x509 } from '../../src/identity/x509.ts'
import type { CryptoKeyPair } from '../../src/identity/x509.ts'
import { isMeshError } from '../../src/errors.ts'

const run = promisify(execFile)
const home = await mkdtemp(join(tmpdir(), 'mesh-identity-'))
t.teardown(async () => { await rm(home, { recursive: true, force: true }) })

t.test('SPIFFE IDs: the spec\'s rules', async (t) => {
  t.same(parseSpiffeId('spiffe://acme.com/agent/weather'), { trustDomain: 'acme.com', path: '/agent/weather' })
  t.same(parseSpiffeId('spiffe://acme.com'), { trustDomain: 'acme.com', path: '' })
  for (const bad of ['http://acme.com/agent/x', 'spiffe://ACME.com/x', 'spiffe://acme.com:8443/x', 'spiffe://user@acme.com/x',
    'spiffe://acme.com/agent/', 'spiffe://acme.com//x', 'spiffe://acme.com/./x', 'spiffe://acme.com/../x', 'spiffe://acme.com/x?y=1',
    'spiffe://acme.com/x#y', 'spiffe:///x', `spiffe://acme.com/${'a'.repeat(2100)}`]) {
    t.throws(() => parseSpiffeId(bad), { code: 'MESH_ERR_IDENTITY_INVALID' }, bad.slice(0, 40))
  }
  t.equal(agentSpiffeId('mcp-mesh.local', 'weather'), 'spiffe://mcp-mesh.local/agent/weather')
  t.throws(() => agentSpiffeId('mcp-mesh.local', 'a/b'), { code: 'MESH_ERR_IDENTITY_INVALID' })
})

t.test('the local CA: created once (folder 0700, key 0600), reused after, one CA when processes race', async (t) => {
  const dir = await mkdtemp(join(home, 'race-'))
  await t.rejects(LocalCa.open(dir, 'acme.test', { create: false }), { code: 'MESH_ERR_IDENTITY_CA' }, 'none yet, and not asked to create one')
  const raced = await Promise.all([1, 2, 3, 4].map(async () => LocalCa.open(dir, 'acme.test', { create: true })))
  const fingerprints = new Set(raced.map((c) => c.certificate.serialNumber))
  t.equal(fingerprints.size, 1, 'four concurrent first uses end with one CA')
  const again = await LocalCa.open(dir, 'acme.test', { create: false })
  t.equal(again.certificate.serialNumber, raced[0].certificate.serialNumber, 'reused after')
  t.equal((await stat(again.paths.key)).mode & 0o777, 0o600, 'key 0600')
  t.equal((await stat(again.paths.dir)).mode & 0o777, 0o700, 'folder 0700')
  const bc = again.certificate.getExtension(x509.BasicConstraintsExtension)
  t.ok(bc?.ca === true && bc.critical, 'a CA, basic constraints critical')
  t.ok(await again.certificate.isSelfSigned(), 'self-signed')
  await t.rejects(LocalCa.open(dir, 'Not A Domain', { create: true }), { code: 'MESH_ERR_IDENTITY_INVALID' })
})

t.test('a CA key others can read is refused, with the fix in the message', async (t) => {
  const dir = await mkdtemp(join(home, 'loose-'))
  const authority = await LocalCa.open(dir, 'acme.test', { create: true })
  await chmod(authority.paths.key, 0o644)
  const err = await LocalCa.open(dir, 'acme.test', { create: true }).catch((e: unknown) => e)
  t.ok(isMeshError(err, 'MESH_ERR_IDENTITY_KEY_PERMISSIONS'), 'MESH_ERR_IDENTITY_KEY_PERMISSIONS')
  t.match((err as Error).message, `chmod 600 ${authority.paths.key}`)
  await chmod(authority.paths.key, 0o600)
  t.ok(await LocalCa.open(dir, 'acme.test', { create: false }), 'usable again once fixed')
})

t.test('an issued SVID follows every X.509-SVID rule, binds the libp2p peer ID, and OpenSSL verifies it', async (t) => {
  const authority = await LocalCa.open(home, 'mcp-mesh.local', { create: true })
  const libp2pKey = await generateKeyPair('Ed25519')
  const svid = await issueSvid(authority, { name: 'weather', hosts: ['localhost', '127.0.0.1', '::1'], libp2pKey, ttlMs: 3600_000 })
  const cert = new x509.X509Certificate(svid.certPem)
  const facts = await checkSvid(cert)
  t.equal(facts.spiffeId, 'spiffe://mcp-mesh.local/agent/weather')
  t.equal(facts.trustDomain, 'mcp-mesh.local')
  t.same(facts.hosts.sort(), ['127.0.0.1', '::1', 'localhost'].sort())
  t.equal(facts.peerId, peerIdFromPrivateKey(libp2pKey).toString(), 'the libp2p extension names the agent\'s peer ID')
  t.ok(Math.abs(facts.notAfter.getTime() - Date.now() - 3600_000) < 5_000, 'lives as long as asked')

  const ku = cert.getExtension(x509.KeyUsagesExtension)!
  t.ok(ku.critical && ku.usages === x509.KeyUsageFlags.digitalSignature, 'key usage critical, digitalSignature only')
  t.equal(cert.getExtension(x509.BasicConstraintsExtension)?.ca, false, 'not a CA')
  t.equal(cert.extensions.find((e) => e.type === LIBP2P_EXTENSION_OID)?.critical, false, 'the libp2p extension is not critical')
  t.ok(await cert.verify({ publicKey: authority.certificate.publicKey }), 'signed by the CA')

  const dir = await mkdtemp(join(home, 'openssl-'))
  await writeFile(join(dir, 'svid.pem'), svid.certPem)
  await writeFile(join(dir, 'bundle.pem'), svid.bundlePem)
  for (const purpose of ['sslserver', 'sslclient']) {
    const { stdout } = await run('openssl', ['verify', '-purpose', purpose, '-CAfile', join(dir, 'bundle.pem'), join(dir, 'svid.pem')])
    t.match(stdout, /: OK/, `openssl verify -purpose ${purpose}`)
  }
  const { stdout: text } = await run('openssl', ['x509', '-noout', '-text', '-in', join(dir, 'svid.pem')])
  t.match(text, 'URI:spiffe://mcp-mesh.local/agent/weather')
  t.match(text, 'DNS:localhost')
  t.match(text, 'IP Address:127.0.0.1')
  t.match(text, 'ASN1 OID: prime256v1')
  // OpenSSL trusts nothing else: another CA's bundle does not verify it.
  const other = await LocalCa.open(home, 'other.test', { create: true })
  await writeFile(join(dir, 'other.pem'), other.pem)
  await t.rejects(run('openssl', ['verify', '-CAfile', join(dir, 'other.pem'), join(dir, 'svid.pem')]), 'another CA does not verify it')
})

/** A leaf from `authority` with exactly `extensions` (to break one rule at a time). */
async function leafWith (authority: LocalCa, extensions: (keys: CryptoKeyPair) => Promise<x509.Extension[]>): Promise<x509.X509Certificate> {
  const keys = await generateKeys()
  return await authority.sign({ serialNumber: serialNumber(), subject: 'CN=broken', notBefore: new Date(), notAfter: new Date(Date.now() + 3600_000), publicKey: keys.publicKey, extensions: await extensions(keys) })
}

t.test('checkSvid refuses each broken rule, and names it', async (t) => {
  const authority = await LocalCa.open(home, 'mcp-mesh.local', { create: true })
  const id = 'spiffe://mcp-mesh.local/agent/x'
  const good = (): x509.Extension[] => [
    new x509.BasicConstraintsExtension(false, undefined, true),
    new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true),
    new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.serverAuth, x509.ExtendedKeyUsage.clientAuth]),
    new x509.SubjectAlternativeNameExtension([{ type: 'url', value: id }]),
  ]
  const replace = (type: string, ext?: x509.Extension): x509.Extension[] => [...good().filter((e) => e.type !== type), ...(ext === undefined ? [] : [ext])]
  t.ok(await checkSvid(await leafWith(authority, async () => good())), 'the baseline passes')
  const other = await generateKeyPair('Ed25519')
  const cases: Array<[string, (keys: CryptoKeyPair) => Promise<x509.Extension[]>, RegExp]> = [
    ['two URI SANs', async () => replace('2.5.29.17', new x509.SubjectAlternativeNameExtension([{ type: 'url', value: id }, { type: 'url', value: 'spiffe://mcp-mesh.local/agent/y' }])), /exactly one URI SAN, not 2/],
    ['no URI SAN', async () => replace('2.5.29.17', new x509.SubjectAlternativeNameExtension([{ type: 'dns', value: 'localhost' }])), /exactly one URI SAN, not 0/],
    ['a SPIFFE ID without a path', async () => replace('2.5.29.17', new x509.SubjectAlternativeNameExtension([{ type: 'url', value: 'spiffe://mcp-mesh.local' }])), /must have a path/],
    ['a URI that is not a SPIFFE ID', async () => replace('2.5.29.17', new x509.SubjectAlternativeNameExtension([{ type: 'url', value: 'https://mcp-mesh.local/x' }])), /not a SPIFFE ID/],
    ['a CA', async () => replace('2.5.29.19', new x509.BasicConstraintsExtension(true, undefined, true)), /must not be a CA/],
    ['key usage not critical', async () => replace('2.5.29.15', new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, false)), /present and critical/],
    ['no digitalSignature', async () => replace('2.5.29.15', new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyEncipherment, true)), /digitalSignature/],
    ['keyCertSign on a leaf', async () => replace('2.5.29.15', new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature | x509.KeyUsageFlags.keyCertSign, true)), /keyCertSign/],
    ['no clientAuth', async () => replace('2.5.29.37', new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.serverAuth])), /clientAuth/],
    ['a libp2p key that endorsed another key', async () => [...good(), new x509.Extension(LIBP2P_EXTENSION_OID, false, await libp2pExtensionValue(other, (await generateKeys()).publicKey))], /does not verify/],
    ['a libp2p extension that is not a SignedKey', async () => [...good(), new x509.Extension(LIBP2P_EXTENSION_OID, false, new Uint8Array([4, 1, 0]))], /not a SignedKey/],
  ]
  for (const [what, exts, message] of cases) {
    const err = await checkSvid(await leafWith(authority, exts)).catch((e: unknown) => e)
    t.ok(isMeshError(err, 'MESH_ERR_IDENTITY_INVALID'), `${what}: MESH_ERR_IDENTITY_INVALID`)
    t.match((err as Error).message, message, `${what}: says why`)
  }
})

t.test('meshctl ca init, show and issue, as a user runs them; OpenSSL verifies what issue writes', async (t) => {
  const dir = await mkdtemp(join(home, 'cli-'))
  const env = { ...process.env, MCP_MESH_HOME: dir, MCP_MESH_TRUST_DOMAIN: 'acme.test' }
  const meshctl = async (...args: string[]): Promise<string> => (await run(process.execPath, ['bin/meshctl.js', ...args], { env })).stdout
  const shown = JSON.parse(await meshctl('ca', 'init', '--json')) as { trustDomain: string, fingerprintSha256: string, key: string }
  t.equal(shown.trustDomain, 'acme.test')
  t.match(shown.fingerprintSha256, /^([0-9A-F]{2}:){31}[0-9A-F]{2}$/)
  t.same(JSON.parse(await meshctl('ca', 'show', '--json')), shown, 'show: the same CA')
  t.match(await meshctl('ca', 'init'), shown.fingerprintSha256, 'init again: the one already there')
  const out = join(dir, 'weather-tls')
  t.match(await meshctl('ca', 'issue', 'weather', '--out', out, '--host', 'weather.internal,10.0.0.7', '--ttl', '2'), 'issued spiffe://acme.test/agent/weather')
  t.equal((await stat(join(out, 'svid.key'))).mode & 0o777, 0o600, 'svid.key 0600')
  const { stdout } = await run('openssl', ['verify', '-purpose', 'sslclient', '-CAfile', join(out, 'bundle.pem'), join(out, 'svid.pem')])
  t.match(stdout, /: OK/)
  const facts = await checkSvid(new x509.X509Certificate(await readFile(join(out, 'svid.pem'), 'utf8')))
  t.same(facts.hosts, ['weather.internal', '10.0.0.7'])
  // The key matches the certificate: OpenSSL derives the same public key from both.
  const fromKey = (await run('openssl', ['pkey', '-pubout', '-in', join(out, 'svid.key')])).stdout
  const fromCert = (await run('openssl', ['x509', '-noout', '-pubkey', '-in', join(out, 'svid.pem')])).stdout
  t.equal(fromKey, fromCert, 'svid.key is the certificate\'s key')

  const usage = await run(process.execPath, ['bin/meshctl.js', 'ca', 'issue', 'weather'], { env }).catch((e: { code: number, stderr: string }) => e)
  t.equal((usage as { code: number }).code, 2, 'no --out: a usage error')
  t.match((usage as { stderr: string }).stderr, '--out <dir>')
  const none = await run(process.execPath, ['bin/meshctl.js', 'ca', 'show'], { env: { ...env, MCP_MESH_TRUST_DOMAIN: 'nobody.test' } }).catch((e: { code: number, stderr: string }) => e)
  t.equal((none as { code: number }).code, 1)
  t.match((none as { stderr: string }).stderr, 'MESH_ERR_IDENTITY_CA: no local CA for trust domain nobody.test')
})
