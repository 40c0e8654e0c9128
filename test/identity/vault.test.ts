// The "vault" identity provider against a Vault PKI server built from Vault's published API
// (test/helpers/vault-pki.ts; Vault itself cannot run here): an agent takes its SVID from it,
// serves and calls with it, renews it at half-life, and says clearly why Vault refused.
import { existsSync } from 'node:fs'
import { mkdtemp, rm, stat } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import t from 'tap'
import { ManualClock } from '../../src/clock.ts'
import { LocalCa } from '../../src/identity/local-ca.ts'
import type { Identity } from '../../src/identity/provider.ts'
import { startVaultProvider } from '../../src/identity/vault-provider.ts'
import { createMeshNode } from '../../src/node.ts'
import type { MeshNode } from '../../src/node.ts'
import { testNodeOptions } from '../helpers/mesh.ts'
import { startTestVault } from '../helpers/vault-pki.ts'
import { caChain } from '../helpers/ca-chain.ts'
import { certsOf } from '../../src/identity/tls.ts'
import { svidAdmitter } from '../../src/identity/admission.ts'
import { waitFor } from '../helpers/wait.ts'

const home = await mkdtemp(join(tmpdir(), 'mesh-vault-'))
const ca = await LocalCa.open(home, 'mcp-mesh.local', { create: true })
const vault = await startTestVault(ca, { token: 's.agent-token' })
const nodes: MeshNode[] = []
t.teardown(async () => {
  await Promise.all(nodes.map(async (n) => n.stop()))
  await vault.close()
  await rm(home, { recursive: true, force: true })
})
const base = { addr: vault.addr, token: 's.agent-token', mount: 'pki', role: 'mcp-mesh', trustDomain: 'mcp-mesh.local', hosts: ['127.0.0.1', 'weather.internal'] }

t.test('Vault issues the SVID: asked with the token, the SPIFFE ID as URI SAN, the hosts, the TTL; the key kept in /dev/shm 0600 and renewed at half-life', async (t) => {
  const clock = new ManualClock(Date.now())
  const provider = await startVaultProvider({ ...base, name: 'weather', ttlMs: 120_000, clock })
  const first = provider.current()
  t.equal(first.spiffeId, 'spiffe://mcp-mesh.local/agent/weather')
  const asked = vault.requests.at(-1)!
  t.same(asked.body, { common_name: 'weather', uri_sans: 'spiffe://mcp-mesh.local/agent/weather', alt_names: 'weather.internal', ip_sans: '127.0.0.1', ttl: '120s', private_key_format: 'pkcs8' })
  t.same([...first.facts.hosts].sort(), ['127.0.0.1', 'weather.internal'])
  if (existsSync('/dev/shm')) t.ok(first.keyPath.startsWith('/dev/shm/'), first.keyPath)
  t.equal((await stat(first.keyPath)).mode & 0o777, 0o600)
  const renewed = new Promise<Identity>((resolve) => { provider.onChange(resolve) })
  // Half of what is left of the first SVID, as the provider counts it (its notAfter comes from
  // the real time Vault issued it at, in whole seconds: a slow issue would put it past 60 s).
  clock.advance(Math.ceil((first.facts.notAfter.getTime() - clock.now()) / 2))
  const second = await renewed
  t.not(second.certPem, first.certPem, 'a new certificate at half-life')
  t.equal(vault.requests.length, 2)
  await provider.stop()
  t.notOk(existsSync(dirname(first.keyPath)), 'the key folder is removed on stop')
  t.equal(clock.pending, 0)
})

t.test('refusals say what Vault said: a wrong token, an unknown role', async (t) => {
  await t.rejects(startVaultProvider({ ...base, token: 'wrong', name: 'weather', ttlMs: 120_000 }), { code: 'MESH_ERR_IDENTITY_PROVIDER', message: /HTTP 403: permission denied/ })
  await t.rejects(startVaultProvider({ ...base, role: 'other', name: 'weather', ttlMs: 120_000 }), { code: 'MESH_ERR_IDENTITY_PROVIDER', message: /HTTP 400: unknown role: other/ })
  await t.rejects(startVaultProvider({ ...base, addr: 'http://127.0.0.1:9', name: 'weather', ttlMs: 120_000 }), { code: 'MESH_ERR_IDENTITY_PROVIDER', message: /ECONNREFUSED/ })
})

t.test('an agent with MCP_MESH_TLS_PROVIDER=vault serves and calls over mutual TLS', async (t) => {
  const MESH = `vault-${process.pid}`
  const env = { MCP_MESH_TLS_PROVIDER: 'vault', VAULT_ADDR: vault.addr, VAULT_TOKEN: 's.agent-token' }
  const saved = { ...process.env }
  Object.assign(process.env, env)
  t.teardown(() => { for (const k of Object.keys(env)) { if (saved[k] === undefined) delete process.env[k]; else process.env[k] = saved[k] } })
  const { tls: _off, ...opts } = testNodeOptions(MESH, 'vaulted')
  const provider = createMeshNode({ ...opts, home })
  provider.tool('ping', { capability: 'ping' }, async (_a, _d, ctx) => ({ from: ctx.authInfo?.clientId }))
  nodes.push(provider)
  await provider.start()
  t.equal(provider.gossip.advert?.identity?.id, 'spiffe://mcp-mesh.local/agent/vaulted')
  // A caller of the same trust domain with the "auto" provider: the same CA signs both.
  const { tls: _off2, ...copts } = testNodeOptions(MESH, 'caller', { bootstrap: provider.gossip.addrs })
  const caller = createMeshNode({ ...copts, home, tls: { provider: 'auto' } })
  nodes.push(caller)
  await caller.start()
  await waitFor('the caller to see ping', () => caller.explain('ping').ranked.length > 0)
  t.same(await caller.call('ping'), { from: 'spiffe://mcp-mesh.local/agent/caller' })
})

t.test('meshctl with MCP_MESH_TLS_PROVIDER=vault takes a 10-minute SVID from Vault and keeps no key on disk', async (t) => {
  const { cliTls } = await import('../../src/cli/identity.ts')
  const before = vault.requests.length
  const tls = await cliTls({}, { MCP_MESH_TLS_PROVIDER: 'vault', VAULT_ADDR: vault.addr, VAULT_TOKEN: 's.agent-token' })
  t.ok(tls !== undefined)
  t.match(new (await import('node:crypto')).X509Certificate(tls!.pems.cert).subjectAltName, /URI:spiffe:\/\/mcp-mesh.local\/agent\/meshctl/)
  t.same(vault.requests.slice(before).map((r) => r.body.ttl), ['600s'])
})

t.test('Vault issuing through an intermediate: the SVID carries it, the root alone is the bundle, and a peer holding only the root admits the agent', async (t) => {
  const chain = await caChain(join(home, 'with-intermediate'), 'mcp-mesh.local')
  const inter = await startTestVault(chain.intermediate, { token: 's.agent-token', rootPem: chain.rootPem })
  t.teardown(async () => { await inter.close() })
  const provider = await startVaultProvider({ ...base, addr: inter.addr, name: 'inter', ttlMs: 120_000 })
  t.teardown(async () => { await provider.stop() })
  const id = provider.current()
  t.same(certsOf(id.certPem).map((c) => c.subject.split('\n').at(-1)), ['CN=inter', 'CN=test intermediate for mcp-mesh.local'], 'the leaf, then the intermediate it was issued through')
  t.same(certsOf(id.bundlePem).map((c) => c.subject), ['CN=test root for mcp-mesh.local'], 'the bundle is the root alone')
  const rootOnly = svidAdmitter({ mesh: 'm', current: () => id, bundleOf: (td) => td === 'mcp-mesh.local' ? chain.rootPem : undefined })
  const admitted = rootOnly.check(svidAdmitter({ mesh: 'm', current: () => id, bundleOf: () => undefined }).prove('A', 'B'), 'A', 'B')
  t.match(admitted, { spiffeId: 'spiffe://mcp-mesh.local/agent/inter' }, 'a peer with the root alone admits it')
})
