// The "spire" provider against a SPIFFE Workload API server built from the published protobuf
// (test/helpers/spire-workload.ts), over a real unix socket with gRPC: SPIRE itself cannot run
// here. An agent takes its SVID from it (also one issued through an intermediate CA), serves and
// calls with it, and follows a rotation pushed on the stream without a failed call.
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t from 'tap'
import * as grpc from '@grpc/grpc-js'
import { z } from 'zod'
import { createMeshNode } from '../../src/node.ts'
import type { MeshNode } from '../../src/node.ts'
import type { MeshNodeOptionsInput } from '../../src/config.ts'
import { LocalCa } from '../../src/identity/local-ca.ts'
import { splitDer, startSpireProvider } from '../../src/identity/spire-provider.ts'
import { certsOf } from '../../src/identity/tls.ts'
import { caChain, issueThrough } from '../helpers/ca-chain.ts'
import { startWorkloadApi, workloadService } from '../helpers/spire-workload.ts'
import { testNodeOptions } from '../helpers/mesh.ts'
import { waitFor } from '../helpers/wait.ts'

const MESH = `spire-${process.pid}`
type TapTest = Parameters<Parameters<typeof t.test>[0]>[0]
t.setTimeout(120_000)
const home = await mkdtemp(join(tmpdir(), 'mesh-spire-'))
const sockets = await mkdtemp(join(tmpdir(), 'mesh-spire-sock-'))
t.teardown(async () => {
  await rm(home, { recursive: true, force: true })
  await rm(sockets, { recursive: true, force: true })
})
const ca = await LocalCa.open(home, 'mcp-mesh.local', { create: true })
const api = await startWorkloadApi(sockets, ca, 'weather')
t.teardown(async () => { await api.close() })

t.test('the Workload API refuses a call without the security header; the provider sends it', async (t) => {
  const Service = await workloadService()
  const raw = new Service(`unix:${api.socket}`, grpc.credentials.createInsecure())
  t.teardown(() => { raw.close() })
  const code = await new Promise<number | undefined>((resolve) => {
    const call = (raw as unknown as { FetchX509SVID: (req: object) => NodeJS.EventEmitter }).FetchX509SVID({})
    call.on('error', (err: { code?: number }) => { resolve(err.code) })
    call.on('data', () => { resolve(undefined) })
  })
  t.equal(code, grpc.status.INVALID_ARGUMENT, 'refused: INVALID_ARGUMENT')
  const provider = await startSpireProvider({ socketPath: `unix://${api.socket}` })
  t.equal(provider.current().spiffeId, 'spiffe://mcp-mesh.local/agent/weather', 'the provider got the SVID')
  await provider.stop()
})

t.test('no Workload API at the socket: a clear error in time', async (t) => {
  await t.rejects(startSpireProvider({ socketPath: join(sockets, 'none.sock'), firstSvidTimeoutMs: 1_500 }), { code: 'MESH_ERR_IDENTITY_PROVIDER', message: /no SVID from the SPIFFE Workload API/ })
})

t.test('splitDer splits concatenated DER certificates and refuses garbage', async (t) => {
  const one = Buffer.from(ca.certificate.rawData)
  t.equal(splitDer(Buffer.concat([one, one])).length, 2)
  t.throws(() => splitDer(Buffer.from([0x30, 0x82, 0xff])), /truncated|bad/)
  t.throws(() => splitDer(Buffer.from('hello')), /not a DER sequence/)
})

/**
 * Starts `weather`, its SVID from the Workload API at `socket`, and a caller with `callerTls`
 * that joins through it, and waits until the caller sees weather; `seen` is the SPIFFE ID
 * weather last served. Both stop when `t` ends.
 */
async function weatherAndCaller (t: TapTest, mesh: string, home: string, socket: string, callerTls: MeshNodeOptionsInput['tls']): Promise<{ weather: MeshNode, caller: MeshNode, seen: () => string | undefined }> {
  const nodes: MeshNode[] = []
  t.teardown(async () => { await Promise.all(nodes.map(async (n) => n.stop())) })
  let seen: string | undefined
  const weather = createMeshNode(testNodeOptions(mesh, 'weather', { home, tls: { mode: 'strict', provider: 'spire', spireSocket: socket } }))
  weather.tool('get_weather', { capability: 'weather', input: { city: z.string() } }, async ({ city }, _deps, ctx) => { seen = ctx.authInfo?.clientId; return { city, sky: 'clear' } })
  nodes.push(weather)
  await weather.start()
  const caller = createMeshNode(testNodeOptions(mesh, 'caller', { home, tls: callerTls, bootstrap: weather.gossip.addrs }))
  nodes.push(caller)
  await caller.start()
  await caller.ready()
  await waitFor('the caller to see weather', () => caller.explain('weather').ranked.length > 0)
  return { weather, caller, seen: () => seen }
}

t.test('an SVID issued through an intermediate (x509_svid: leaf then intermediate; the root as the bundle): taken whole, and an agent serves with it and admits and answers a caller of the same chain', async (t) => {
  const chainHome = await mkdtemp(join(home, 'chain-'))
  const chain = await caChain(chainHome, 'mcp-mesh.local')
  const chained = await startWorkloadApi(await mkdtemp(join(sockets, 'chain-')), chain, 'weather')
  t.teardown(async () => { await chained.close() })
  const provider = await startSpireProvider({ socketPath: chained.socket })
  const identity = provider.current()
  await provider.stop()
  t.equal(identity.spiffeId, 'spiffe://mcp-mesh.local/agent/weather')
  t.same(certsOf(identity.certPem).map((c) => c.subject), ['O=mcp-mesh\nCN=weather', 'CN=test intermediate for mcp-mesh.local'], 'the intermediate kept, to send it')
  t.equal(identity.bundlePem, chain.rootPem, 'the root alone is trusted')

  // Both agents hold only the root: each must send its intermediate, in TLS and in admission.
  const caller = await issueThrough(chain, { name: 'caller', hosts: [] })
  const files = { certFile: join(chainHome, 'caller.pem'), keyFile: join(chainHome, 'caller.key'), bundleFile: join(chainHome, 'bundle.pem') }
  await writeFile(files.certFile, caller.certPem)
  await writeFile(files.keyFile, caller.keyPem, { mode: 0o600 })
  await writeFile(files.bundleFile, caller.bundlePem)
  const { caller: c, seen } = await weatherAndCaller(t, `${MESH}-chain`, chainHome, chained.socket, { mode: 'strict', provider: 'file', ...files })
  t.match(await c.call('weather', { city: 'Oslo' }), { sky: 'clear' })
  t.equal(seen(), 'spiffe://mcp-mesh.local/agent/caller')
})

t.test('an agent serves and calls with its SPIRE SVID, and follows a rotation with no failed call', async (t) => {
  // The caller takes its identity from the same CA ("auto"): one trust domain.
  const { weather, caller, seen } = await weatherAndCaller(t, MESH, home, api.socket, { mode: 'strict' })
  t.equal(weather.gossip.advert?.identity?.id, 'spiffe://mcp-mesh.local/agent/weather', 'its advert endorses the SPIRE SVID')
  t.match(await caller.call('weather', { city: 'Oslo' }), { sky: 'clear' })
  t.equal(seen(), 'spiffe://mcp-mesh.local/agent/caller')
  const before = weather.gossip.advert!.identity!.key
  const failures: string[] = []
  let ok = 0
  let rotated = false
  const loop = (async () => {
    while (!rotated || ok < 50) {
      await caller.call('weather', { city: 'Oslo' }).then(() => { ok++ }, (err: Error & { code?: string }) => { failures.push(`${err.code}: ${err.message}`) })
    }
  })()
  await api.rotate()
  await waitFor('the rotated SVID to be advertised', () => weather.gossip.advert!.identity!.key !== before)
  await waitFor('the caller to see the new key', () => caller.members().some((m) => m.advert.name === 'weather' && m.advert.identity?.key !== before))
  rotated = true
  await loop
  t.same(failures, [], `no call failed across the rotation (${ok} calls)`)
})
