import { createPrivateKey, X509Certificate } from 'node:crypto'
import { logger } from '../telemetry/log.ts'
import { systemClock } from '../clock.ts'
import type { Clock, TimerHandle } from '../clock.ts'
import { MeshError } from '../errors.ts'
import { checkIdentity } from './file-provider.ts'
import { makeKeyDir } from './key-dir.ts'
import { IdentityListeners } from './provider.ts'
import type { Identity, IdentityProvider } from './provider.ts'

const log = logger('mesh:identity')

/** What the "spire" provider needs. */
export interface SpireProviderInit {
  /** The SPIFFE Workload API's unix socket (`MCP_MESH_SPIRE_SOCKET`; a `unix://` prefix is accepted). */
  socketPath: string
  /** How long to wait for the first SVID (default 10 s). */
  firstSvidTimeoutMs?: number
  clock?: Clock
  /** Where the key folder is made (tests); `/dev/shm` by default. */
  keyBase?: string
}

/**
 * The Workload API's X.509 part (the published `workload.proto`: the service has no package, so
 * its path is `/SpiffeWorkloadAPI/FetchX509SVID`), as a protobuf.js JSON descriptor: no file to
 * ship beside the bundle. The tests' Workload API server loads the `.proto` text itself.
 */
const WORKLOAD_API = {
  nested: {
    X509SVIDRequest: { fields: {} },
    X509SVIDResponse: {
      fields: {
        svids: { rule: 'repeated' as const, type: 'X509SVID', id: 1 },
        crl: { rule: 'repeated' as const, type: 'bytes', id: 2 },
        federated_bundles: { keyType: 'string', type: 'bytes', id: 3 },
      },
    },
    X509SVID: {
      fields: {
        spiffe_id: { type: 'string', id: 1 },
        x509_svid: { type: 'bytes', id: 2 },
        x509_svid_key: { type: 'bytes', id: 3 },
        bundle: { type: 'bytes', id: 4 },
      },
    },
    SpiffeWorkloadAPI: {
      methods: { FetchX509SVID: { requestType: 'X509SVIDRequest', responseType: 'X509SVIDResponse', responseStream: true } },
    },
  },
}

/** One X509SVID message, as protobuf.js decodes it. */
interface X509Svid { spiffe_id: string, x509_svid: Buffer, x509_svid_key: Buffer, bundle: Buffer }

/** Splits concatenated DER certificates (the Workload API's chains and bundles). */
export function splitDer (buf: Buffer): Buffer[] {
  const out: Buffer[] = []
  let at = 0
  while (at < buf.length) {
    if (buf[at] !== 0x30) throw new Error('not a DER sequence')
    if (at + 2 > buf.length) throw new Error('truncated DER')
    let len = buf[at + 1]
    let head = 2
    if (len & 0x80) {
      const n = len & 0x7f
      if (n === 0 || n > 4) throw new Error('bad DER length')
      if (at + 2 + n > buf.length) throw new Error('truncated DER')
      len = 0
      for (let i = 0; i < n; i++) len = len * 256 + buf[at + 2 + i]
      head += n
    }
    if (at + head + len > buf.length) throw new Error('truncated DER')
    out.push(buf.subarray(at, at + head + len))
    at += head + len
  }
  return out
}

const pemOf = (ders: Buffer[]): string => ders.map((d) => new X509Certificate(d).toString()).join('')

/**
 * The "spire" provider: the SPIFFE Workload API over its unix socket (SPIRE's agent). It opens
 * `FetchX509SVID` with the `workload.spiffe.io: true` metadata the API requires and follows the
 * stream: every SVID pushed (a rotation) becomes the current identity, checked as the file
 * provider checks files, its key written to the private key folder. A broken stream is opened
 * again with backoff while the current SVID lasts. The gRPC library is loaded only here.
 */
export async function startSpireProvider (init: SpireProviderInit): Promise<IdentityProvider> {
  const clock = init.clock ?? systemClock
  const socket = init.socketPath.replace(/^unix:\/\//, '')
  const grpc = await import('@grpc/grpc-js')
  const loader = await import('@grpc/proto-loader')
  const api = grpc.loadPackageDefinition(loader.fromJSON(WORKLOAD_API as unknown as Parameters<typeof loader.fromJSON>[0], { keepCase: true })) as unknown as {
    SpiffeWorkloadAPI: new (address: string, credentials: unknown) => {
      FetchX509SVID: (req: object, metadata: unknown) => NodeJS.EventEmitter & { cancel: () => void }
      close: () => void
    }
  }
  const client = new api.SpiffeWorkloadAPI(`unix:${socket}`, grpc.credentials.createInsecure())
  const keys = await makeKeyDir(init.keyBase)
  const listeners = new IdentityListeners()
  let current: Identity | undefined
  let stopped = false
  let call: ReturnType<typeof client.FetchX509SVID> | undefined
  let retry: TimerHandle | undefined
  let backoff = 500
  const first = Promise.withResolvers<Identity>()

  const take = async (svid: X509Svid): Promise<Identity> => {
    const chain = splitDer(Buffer.from(svid.x509_svid))
    const keyPem = createPrivateKey({ key: Buffer.from(svid.x509_svid_key), format: 'der', type: 'pkcs8' }).export({ type: 'pkcs8', format: 'pem' }) as string
    const where = { cert: `${socket} (x509_svid)`, key: `${socket} (x509_svid_key)`, bundle: `${socket} (bundle)` }
    const keyPath = await keys.write('svid.key', keyPem)
    return checkIdentity({ certPem: pemOf(chain), keyPem, bundlePem: pemOf(splitDer(Buffer.from(svid.bundle))) }, where, keyPath, clock.now())
  }

  const open = (): void => {
    if (stopped) return
    const metadata = new grpc.Metadata()
    metadata.set('workload.spiffe.io', 'true')
    const c = call = client.FetchX509SVID({}, metadata)
    c.on('data', (res: { svids: X509Svid[] }) => {
      backoff = 500
      const svid = res.svids[0]
      if (svid === undefined) return
      take(svid).then((identity) => {
        if (stopped) return
        const firstOne = current === undefined
        current = identity
        if (firstOne) first.resolve(identity)
        else listeners.emit(identity)
      }, (err: Error) => {
        log.error('the Workload API sent an SVID that does not pass the checks: %s', err)
        if (current === undefined) first.reject(err)
      })
    })
    c.on('error', (err: Error & { code?: number, details?: string }) => {
      if (stopped || c !== call) return
      log.error('the Workload API stream at %s failed: %s', socket, err)
      if (current === undefined && err.code === grpc.status.INVALID_ARGUMENT) {
        first.reject(new MeshError('MESH_ERR_IDENTITY_PROVIDER', `the SPIFFE Workload API at ${socket} refused the request: ${err.details ?? err.message}`))
        return
      }
      retry = clock.setTimeout(open, backoff)
      backoff = Math.min(backoff * 2, 30_000)
    })
  }

  open()
  const timeoutMs = init.firstSvidTimeoutMs ?? 10_000
  const timer = clock.setTimeout(() => {
    first.reject(new MeshError('MESH_ERR_IDENTITY_PROVIDER', `no SVID from the SPIFFE Workload API at ${socket} within ${timeoutMs} ms (is the SPIRE agent running, and is this workload registered?)`))
  }, timeoutMs)
  const stop = async (): Promise<void> => {
    stopped = true
    if (retry !== undefined) clock.clearTimeout(retry)
    call?.cancel()
    client.close()
    await keys.remove()
  }
  try {
    current = await first.promise
  } catch (err) {
    await stop()
    throw err
  } finally {
    clock.clearTimeout(timer)
  }
  return {
    kind: 'spire',
    current: () => current!,
    onChange: (l) => listeners.add(l),
    stop,
  }
}
