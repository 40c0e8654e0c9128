// The Prometheus endpoint: `GET /metrics` on its own plain-HTTP listener. It carries no identity,
// so it binds loopback unless told otherwise (see `MetricsOptionsSchema`).
import { createServer } from 'node:http'
import type { Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import { logger } from '@libp2p/logger'
import type { MeshMetrics } from './metrics.ts'

const log = logger('mesh:metrics')

/** A scrape that has not sent its request within this is cut: the endpoint holds no slow client. */
const REQUEST_TIMEOUT_MS = 10_000

/** A running (or not yet started) metrics endpoint. */
export interface MetricsEndpoint {
  /** `http://host:port/metrics` once started; empty before. */
  readonly url: string
  /** Listens. */
  start(): Promise<void>
  /** Closes the listener and every connection (scrapers keep theirs alive). Idempotent. */
  stop(): Promise<void>
}

/** Creates the endpoint serving `metrics` on `host:port` (0: any free port); nothing listens until `start()`. */
export function createMetricsEndpoint (init: { host: string, port: number, metrics: Pick<MeshMetrics, 'text' | 'contentType'> }): MetricsEndpoint {
  let server: Server | undefined
  let url = ''
  let stopped: Promise<void> | undefined
  return {
    get url () { return url },

    async start () {
      const s = server = createServer((req, res) => {
        const path = (req.url ?? '/').split('?', 1)[0]
        if (path !== '/metrics' || (req.method !== 'GET' && req.method !== 'HEAD')) { res.writeHead(404).end(); return }
        init.metrics.text().then((text) => {
          res.writeHead(200, { 'content-type': init.metrics.contentType }).end(req.method === 'HEAD' ? undefined : text)
        }, (err: Error) => {
          log.error('collecting metrics failed: %s', err.message)
          res.writeHead(500).end()
        })
      })
      s.headersTimeout = REQUEST_TIMEOUT_MS
      s.requestTimeout = REQUEST_TIMEOUT_MS
      await new Promise<void>((resolve, reject) => {
        s.once('error', reject)
        s.listen(init.port, init.host, () => { s.off('error', reject); resolve() })
      })
      const { port } = s.address() as AddressInfo
      url = `http://${init.host.includes(':') ? `[${init.host}]` : init.host}:${port}/metrics`
    },

    stop () {
      stopped ??= (async () => {
        const s = server
        if (s === undefined || !s.listening) return
        const closed = new Promise<void>((resolve) => s.close(() => resolve()))
        s.closeAllConnections()
        await closed
      })()
      return stopped
    },
  }
}
