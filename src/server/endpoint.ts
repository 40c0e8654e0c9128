import { createServer } from 'node:http'
import type { IncomingMessage, RequestListener, Server, ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'
import type { McpServer } from '@modelcontextprotocol/sdk/server/mcp.js'
import type { AuthInfo } from '@modelcontextprotocol/sdk/server/auth/types.js'
import { SUPPORTED_PROTOCOL_VERSIONS } from '@modelcontextprotocol/sdk/types.js'
import type { JSONRPCMessage } from '@modelcontextprotocol/sdk/types.js'
import type { HttpOptions } from '../config.ts'
import { systemClock } from '../clock.ts'
import type { Clock } from '../clock.ts'
import { ExchangeTransport } from './exchange-transport.ts'
import type { FastCall } from './exchange-transport.ts'
import { Exchange } from './exchange.ts'
import type { ReaderLimits } from './exchange.ts'
import { callerKeyOf } from './caller-key.ts'
import { hostRefusal } from './host-check.ts'
import { json, reject, tooLarge } from './replies.ts'

/** How an agent's MCP endpoint listens and what it accepts. */
export interface EndpointInit {
  /** The protocol engine: tools are registered on it. */
  mcp: McpServer
  /** Where it listens and its limits (`HttpOptionsSchema.parse({})` for the defaults). */
  http: HttpOptions
  /** Whether `/readyz` says ready (the endpoint adds "not draining"). */
  isReady: () => boolean
  /**
   * The TLS seam: builds the listening server around our request handler (default plain HTTP).
   * Identity plugs an HTTPS server with client-certificate checks in here.
   */
  createServer?: (listener: RequestListener) => Server
  /** The `tools/call` fast path (see ExchangeTransport); without it every request goes through the SDK. */
  fastCall?: FastCall
  /**
   * Who is calling (the identity seam); becomes `extra.authInfo` in tool handlers, and its
   * `clientId` scopes cancellations and answers to the server's requests (else the connection does).
   */
  authenticate?: (req: IncomingMessage) => AuthInfo | undefined
  clock?: Clock
}

/** What the endpoint refused or dropped, by reason. */
export interface EndpointStats {
  /**
   * `busy`, `draining`, `body-too-large`: POSTs refused. `connection-cap`: connections closed
   * unread. `slow-reader`: answers dropped for a client that did not read them.
   * `cancel-unmatched`: a cancellation naming no request of its sender in flight.
   * `answer-unmatched`, `answer-foreign`: an answer to a server request (sampling, elicitation)
   * that was not sent to its sender (unknown ID; another identity).
   * With mutual TLS: `tls-unauthorized`, `tls-not-svid`, `tls-foreign-domain`, `tls-handshake`
   * (clients refused before any HTTP), and `not-authorized` (a call its tool's allow-list refused).
   */
  dropped: Record<string, number>
}

/** A running MCP endpoint: Streamable HTTP on `/mcp`, plus `/healthz` and `/readyz`. */
export interface Endpoint {
  /** The MCP URL, for example `http://127.0.0.1:40123/mcp` (after start). */
  readonly url: string
  /** Requests being served now, with POST bodies still arriving. */
  readonly inflight: number
  readonly draining: boolean
  readonly stats: EndpointStats
  /** Open client connections now (0 when not listening). */
  connections(): Promise<number>
  start(): Promise<void>
  /** Stops taking new requests (503 draining) and waits for those in flight, at most `graceMs`. */
  drain(graceMs: number): Promise<void>
  /** Closes the listener and every connection. Idempotent. */
  stop(): Promise<void>
}

/** The path MCP is served on. */
export const MCP_PATH = '/mcp'

/** Creates the endpoint; nothing listens until `start()`. */
export function createEndpoint (init: EndpointInit): Endpoint {
  const http = init.http
  const stats: EndpointStats = { dropped: {} }
  const count = (reason: string): void => { stats.dropped[reason] = (stats.dropped[reason] ?? 0) + 1 }
  const transport = new ExchangeTransport({
    ...(init.fastCall === undefined ? {} : { fast: { server: init.mcp.server, fastCall: init.fastCall } }),
    onDrop: count,
  })
  const clock = init.clock ?? systemClock
  const readers: ReaderLimits = {
    maxUnreadBytes: http.maxUnreadBytes,
    slowReaderTimeoutMs: http.slowReaderTimeoutMs,
    clock,
    onSlowReader: (exchange) => {
      count('slow-reader')
      if (!exchange.done) transport.abandon(exchange)
    },
  }
  const allowed = allowedHosts(http)
  let server: Server | undefined
  let url = ''
  let draining = false
  let stopped: Promise<void> | undefined
  /**
   * POSTs whose body is still arriving, at most `maxConcurrentCalls` at once. They hold no call
   * slot: what a body carries is known only once read, and one that carries only responses
   * (answers to our sampling or elicitation requests) or notifications (`notifications/cancelled`)
   * must get through while the calls waiting for it hold every slot.
   */
  let reading = 0

  const handle: RequestListener = (req, res) => {
    const path = (req.url ?? '/').split('?', 1)[0]
    if (path === MCP_PATH) {
      if (req.method === 'POST') { onPost(req, res); return }
      // No server-initiated stream and no sessions: GET and DELETE are not offered (the spec allows 405).
      res.writeHead(405, { allow: 'POST' }).end()
      return
    }
    if (req.method === 'GET' && path === '/healthz') { json(res, 200, { status: 'ok' }); return }
    if (req.method === 'GET' && path === '/readyz') {
      const status = draining ? 'draining' : init.isReady() ? 'ready' : 'starting'
      json(res, status === 'ready' ? 200 : 503, { status })
      return
    }
    res.writeHead(404).end()
  }

  const busy = (res: ServerResponse, what = 'serves at most'): void => {
    count('busy')
    reject(res, 503, 'MESH_ERR_SERVER_BUSY', `this agent ${what} ${http.maxConcurrentCalls} requests at once (http.maxConcurrentCalls)`)
  }
  const refuseDraining = (res: ServerResponse): void => {
    count('draining')
    reject(res, 503, 'MESH_ERR_SERVER_DRAINING', 'this agent is draining: call another provider')
  }

  function onPost (req: IncomingMessage, res: ServerResponse): void {
    const refusal = hostRefusal(req, allowed)
    if (refusal !== undefined) { reject(res, 403, undefined, refusal); return }
    if (draining) { refuseDraining(res); return }
    // Counted from the first byte, so half-sent bodies are not free: they are bounded apart from
    // the calls (by this, maxBodyBytes and requestTimeoutMs).
    if (reading >= http.maxConcurrentCalls) { busy(res, 'reads at most'); return }
    if (!String(req.headers['content-type'] ?? '').toLowerCase().startsWith('application/json')) {
      reject(res, 415, undefined, 'Content-Type must be application/json')
      return
    }
    const accept = String(req.headers.accept ?? '*/*')
    if (!/application\/json|text\/event-stream|\*\/\*/i.test(accept)) {
      reject(res, 406, undefined, 'Accept must include application/json and text/event-stream')
      return
    }
    const version = req.headers['mcp-protocol-version']
    if (typeof version === 'string' && !SUPPORTED_PROTOCOL_VERSIONS.includes(version)) {
      reject(res, 400, undefined, `unsupported MCP-Protocol-Version ${version}; supported: ${SUPPORTED_PROTOCOL_VERSIONS.join(', ')}`)
      return
    }
    const declared = Number(req.headers['content-length'] ?? 0)
    if (declared > http.maxBodyBytes) { count('body-too-large'); tooLarge(res); req.resume(); return }

    reading++
    let holding = true
    const release = (): void => { if (holding) { holding = false; reading-- } }
    let exchange: Exchange | undefined
    // One listener for every ending: the answer sent, the client gone mid-body or mid-call.
    res.on('close', () => {
      release()
      if (exchange !== undefined && !exchange.done) transport.abandon(exchange)
    })
    const chunks: Buffer[] = []
    let size = 0
    req.on('data', (c: Buffer) => {
      size += c.length
      if (size > http.maxBodyBytes) { count('body-too-large'); tooLarge(res); req.destroy(); return }
      chunks.push(c)
    })
    req.on('end', () => {
      release()
      if (res.headersSent) return
      if (draining) { refuseDraining(res); return }
      let body: unknown
      try {
        body = JSON.parse(Buffer.concat(chunks, size).toString('utf8'))
      } catch {
        reject(res, 400, undefined, 'Parse error: the body is not JSON', -32700)
        return
      }
      const batch = Array.isArray(body)
      const messages = (batch ? body : [body]) as unknown[]
      if (messages.length === 0 || !messages.every(isJsonRpc)) {
        reject(res, 400, undefined, 'Invalid Request: expected a JSON-RPC 2.0 message', -32600)
        return
      }
      // Every request of a batch counts: a POST that would pass the limit is refused whole, before
      // anything runs, so a mesh caller can fail over. Responses and notifications count for nothing.
      let requests = 1
      if (batch) requests = messages.reduce<number>((n, m) => n + (isRequest(m) ? 1 : 0), 0)
      else if (!isRequest(messages[0])) requests = 0
      if (requests > 0 && transport.inflight + requests > http.maxConcurrentCalls) { busy(res); return }
      const authInfo = init.authenticate?.(req)
      exchange = new Exchange(res, batch, readers)
      const dispatched = transport.dispatch(messages, exchange, {
        requestInfo: { headers: req.headers },
        ...(authInfo === undefined ? {} : { authInfo }),
        caller: callerKeyOf(req, authInfo),
      })
      if (dispatched === 0) {
        exchange.done = true
        res.writeHead(202).end()
      }
    })
  }

  return {
    get url () { return url },
    get inflight () { return transport.inflight + reading },
    get draining () { return draining },
    stats,

    async connections () {
      const s = server
      if (s === undefined || !s.listening) return 0
      return await new Promise<number>((resolve) => { s.getConnections((err, n) => { resolve(err === null ? n : 0) }) })
    },

    async start () {
      await init.mcp.connect(transport)
      const s = server = (init.createServer ?? createServer)(handle)
      s.keepAliveTimeout = 65_000 // longer than common client pools' idle time, so they close first
      // Node applies the header timeout from when a connection opens (so a silent one is closed
      // too) and from each request's first byte, and checks both timeouts on this interval (read
      // when listening starts; 30 s by default): a quarter of the shorter one cuts a slow request
      // between 1 and 1.25 times its timeout.
      s.headersTimeout = http.headersTimeoutMs
      s.requestTimeout = http.requestTimeoutMs
      ;(s as Server & { connectionsCheckingInterval: number }).connectionsCheckingInterval = Math.max(50, Math.min(http.headersTimeoutMs, http.requestTimeoutMs) / 4)
      s.maxConnections = http.maxConnections
      s.on('drop', () => count('connection-cap'))
      await new Promise<void>((resolve, reject) => {
        s.once('error', reject)
        s.listen(http.port, http.host, () => { s.off('error', reject); resolve() })
      })
      const { port } = s.address() as AddressInfo
      const host = http.announceHost ?? http.host
      const scheme = 'cert' in s || 'setSecureContext' in s ? 'https' : 'http'
      url = `${scheme}://${host.includes(':') ? `[${host}]` : host}:${port}${MCP_PATH}`
    },

    async drain (graceMs) {
      draining = true
      let timer: ReturnType<Clock['setTimeout']> | undefined
      await Promise.race([
        transport.idle(),
        new Promise<void>((resolve) => { timer = clock.setTimeout(resolve, graceMs) }),
      ])
      if (timer !== undefined) clock.clearTimeout(timer)
    },

    stop () {
      stopped ??= (async () => {
        draining = true
        const s = server
        if (s !== undefined) {
          const closed = new Promise<void>((resolve) => s.close(() => resolve()))
          s.closeAllConnections()
          await closed
        }
        await init.mcp.close()
      })()
      return stopped
    },
  }
}

/** Loopback-bound endpoints answer only to loopback host names unless told otherwise. */
function allowedHosts (http: HttpOptions): string[] | undefined {
  if (http.allowedHosts !== undefined) return http.allowedHosts.map((h) => h.toLowerCase())
  const loopback = ['127.0.0.1', 'localhost', '::1', '[::1]']
  if (!loopback.includes(http.host) && !http.host.startsWith('127.')) return undefined
  const names = ['localhost', '127.0.0.1', '[::1]', http.host.toLowerCase()]
  if (http.announceHost !== undefined) names.push(http.announceHost.toLowerCase())
  return names
}

function isJsonRpc (m: unknown): m is JSONRPCMessage {
  return typeof m === 'object' && m !== null && (m as { jsonrpc?: unknown }).jsonrpc === '2.0' &&
    (typeof (m as { method?: unknown }).method === 'string' || 'result' in m || 'error' in m)
}

function isRequest (m: unknown): boolean {
  return 'method' in (m as object) && 'id' in (m as object)
}
