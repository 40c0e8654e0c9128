// A SPIFFE Workload API server for tests, built from the published protobuf
// (test/fixtures/workload.proto) with gRPC over a unix socket, as a SPIRE agent serves it. SPIRE
// cannot run on this machine. Faithful where the mesh depends on it: a call without the
// `workload.spiffe.io: true` metadata is refused (INVALID_ARGUMENT, "security header missing from
// request", as SPIRE answers), the SVID (leaf first, then any intermediates), its PKCS #8 key and
// the bundle are concatenated DER, and `rotate()` pushes a new SVID on every open stream, as
// SPIRE does before an SVID expires.
import { createPrivateKey } from 'node:crypto'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import * as grpc from '@grpc/grpc-js'
import * as loader from '@grpc/proto-loader'
import type { LocalCa } from '../../src/identity/local-ca.ts'
import { issueSvid } from '../../src/identity/svid.ts'
import { certsOf } from '../../src/identity/tls.ts'
import { issueThrough } from './ca-chain.ts'
import type { CaChain } from './ca-chain.ts'

export const WORKLOAD_PROTO = fileURLToPath(new URL('../fixtures/workload.proto', import.meta.url))

/** The Workload API's service, loaded from the published definition. */
export async function workloadService (): Promise<grpc.ServiceClientConstructor> {
  const def = await loader.load(WORKLOAD_PROTO, { keepCase: true })
  return (grpc.loadPackageDefinition(def) as unknown as { SpiffeWorkloadAPI: grpc.ServiceClientConstructor }).SpiffeWorkloadAPI
}

export interface WorkloadApi {
  socket: string
  /** Calls refused for a missing security header. */
  refused: number
  /** SVIDs sent so far. */
  sent: number
  /** Issues a new SVID and pushes it on every open stream. */
  rotate(): Promise<void>
  close(): Promise<void>
}

/**
 * Serves SVIDs `spiffe://<domain>/agent/<name>` from `ca` at `<dir>/agent.sock`; from a
 * `CaChain`, issued by its intermediate and sent with it, the root as the bundle.
 */
export async function startWorkloadApi (dir: string, ca: LocalCa | CaChain, name: string, hosts = ['127.0.0.1'], ttlMs = 3_600_000): Promise<WorkloadApi> {
  const service = await workloadService()
  const streams = new Set<grpc.ServerWritableStream<object, object>>()
  const der = (pem: string): Buffer => Buffer.concat(certsOf(pem).map((c) => c.raw))
  const state = { refused: 0, sent: 0 }
  const response = async (): Promise<object> => {
    const svid = 'rootPem' in ca ? await issueThrough(ca, { name, hosts, ttlMs }) : await issueSvid(ca, { name, hosts, ttlMs })
    const key = createPrivateKey(svid.keyPem).export({ type: 'pkcs8', format: 'der' })
    return { svids: [{ spiffe_id: svid.spiffeId, x509_svid: der(svid.certPem), x509_svid_key: key, bundle: der(svid.bundlePem) }], crl: [], federated_bundles: {} }
  }
  const server = new grpc.Server()
  server.addService(service.service, {
    FetchX509SVID: (call: grpc.ServerWritableStream<object, object>) => {
      if (call.metadata.get('workload.spiffe.io')[0] !== 'true') {
        state.refused++
        call.emit('error', { code: grpc.status.INVALID_ARGUMENT, details: 'security header missing from request' })
        return
      }
      streams.add(call)
      call.on('cancelled', () => { streams.delete(call) })
      void response().then((r) => { state.sent++; call.write(r) })
    },
  })
  const socket = join(dir, 'agent.sock')
  await new Promise<void>((resolve, reject) => {
    server.bindAsync(`unix:${socket}`, grpc.ServerCredentials.createInsecure(), (err) => { if (err === null) resolve(); else reject(err) })
  })
  return {
    socket,
    get refused () { return state.refused },
    get sent () { return state.sent },
    async rotate () {
      for (const call of streams) {
        const r = await response()
        state.sent++
        call.write(r)
      }
    },
    async close () {
      for (const call of streams) call.end()
      await new Promise<void>((resolve) => { server.tryShutdown(() => { resolve() }) })
    },
  }
}
