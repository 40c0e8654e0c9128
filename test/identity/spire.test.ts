// The "spire" provider against a SPIFFE Workload API server built from the published protobuf
// (test/helpers/spire-workload.ts), over a real unix socket with gRPC: SPIRE itself cannot run
// here. An agent takes its SVID from it, serves and calls with it, and follows a rotation pushed
// on the stream without a failed call.
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t from 'tap'
import * as grpc from '@grpc/grpc-js'
import { z } from 'zod'
import { createMeshNode } from '../../src/node.ts'
import type { MeshNode } from '../../src/node.ts'
import { LocalCa } from '../../src/identity/local-ca.ts'
import { splitDer, startSpireProvider } from '../../src/identity/spire-provider.ts'
import { startWorkloadApi, workloadService } from '../helpers/spire-workload.ts'
import { testNodeOptions } from '../helpers/mesh.ts'
import { waitFor } from '../helpers/wait.ts'

const MESH = `spire-${process.pid}`
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

t.test('an agent serves and calls with its SPIRE SVID, and follows a rotation with no failed call', async (t) => {
  const nodes: MeshNode[] = []
  t.teardown(async () => { await Promise.all(nodes.map(async (n) => n.stop())) })
  let seen: string | undefined
  const weather = createMeshNode(testNodeOptions(MESH, 'weather', { home, tls: { mode: 'strict', provider: 'spire', spireSocket: api.socket } }))
  weather.tool('get_weather', { capability: 'weather', input: { city: z.string() } }, async ({ city }, _deps, ctx) => { seen = ctx.authInfo?.clientId; return { city, sky: 'clear' } })
  nodes.push(weather)
  await weather.start()
  t.equal(weather.gossip.advert?.identity?.id, 'spiffe://mcp-mesh.local/agent/weather', 'its advert endorses the SPIRE SVID')
  // The caller takes its identity from the same CA ("auto"): one trust domain.
  const caller = createMeshNode(testNodeOptions(MESH, 'caller', { home, tls: { mode: 'strict' }, bootstrap: weather.gossip.addrs }))
  nodes.push(caller)
  await caller.start()
  await caller.ready()
  await waitFor('the caller to see weather', () => caller.explain('weather').ranked.length > 0)
  t.match(await caller.call('weather', { city: 'Oslo' }), { sky: 'clear' })
  t.equal(seen, 'spiffe://mcp-mesh.local/agent/caller')
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
