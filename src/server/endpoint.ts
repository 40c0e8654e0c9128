import { createServer } from 'node:http'
import type { IncomingMessage, RequestListener, Server, ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'
import type { McpServer } from '@modelcontextprotocol/sdk/server/mcp.js'
import type { AuthInfo } from '@modelcontextprotocol/sdk/server/auth/types.js'
import { SUPPORTED_PROTOCOL_VERSIONS } from '@modelcontextprotocol/sdk/types.js'
import type { JSONRPCMessage } from '@modelcontextprotocol/sdk/types.js'
import type { ErrorCode } from '../errors.ts'
import { ExchangeTransport } from './exchange-transport.ts'
import type { Exchange, FastCall } from './exchange-transport.ts'

/** How an agent's MCP endpoint listens and what it accepts. */
export interface EndpointInit {
  /** The protocol engine: tools are registered on it. */
  mcp: McpServer
  host: string
  port: number
  /** Host name or IP put in the advertised URL (default: the bound host). */
  announceHost?: string
  /** Largest request body accepted, in bytes. */
  maxBodyBytes: number
  /** Requests served at once; more are refused with 503 and MESH_ERR_SERVER_BUSY. */
  maxConcurrentCalls: number
  /** Whether `/readyz` says ready (the endpoint adds "not draining"). */
  isReady: () => boolean
  /**
   * The TLS seam: builds the listening server around our request handler (default plain HTTP).
   * Identity plugs an HTTPS server with client-certificate checks in here.
   */
  createServer?: (listener: RequestListener) => Server
  /**
   * Host names accepted in the Host header (DNS-rebinding protection). Undefined: any Host, but a
   * browser's Origin must still name the same host.
   */
  allowedHosts?: string[]
  /** The `tools/call` fast path (see ExchangeTransport); without it every request goes through the SDK. */
  fastCall?: FastCall
  /** Who is calling (the identity seam); becomes `extra.authInfo` in tool handlers. */
  authenticate?: (req: IncomingMessage) => AuthInfo | undefined
}

/** A running MCP endpoint: Streamable HTTP on `/mcp`, plus `/healthz` and `/readyz`. */
export interface Endpoint {
  /** The MCP URL, for example `http://127.0.0.1:40123/mcp` (after start). */
  readonly url: string
  /** Requests being served now. */
  readonly inflight: number
  readonly draining: boolean
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
  const transport = new ExchangeTransport(init.fastCall === undefined ? undefined : { server: init.mcp.server, fastCall: init.fastCall })
  let server: Server | undefined
  let url = ''
  let draining = false
  let stopped: Promise<void> | undefined

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

  function onPost (req: IncomingMessage, res: ServerResponse): void {
    const refusal = hostRefusal(req, init.allowedHosts)
    if (refusal !== undefined) { reject(res, 403, undefined, refusal); return }
    if (draining) { reject(res, 503, 'MESH_ERR_SERVER_DRAINING', 'this agent is draining: call another provider'); return }
    if (transport.inflight >= init.maxConcurrentCalls) {
      reject(res, 503, 'MESH_ERR_SERVER_BUSY', `this agent serves at most ${init.maxConcurrentCalls} requests at once`)
      return
    }
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
    if (declared > init.maxBodyBytes) { tooLarge(res); req.resume(); return }
    const chunks: Buffer[] = []
    let size = 0
    req.on('data', (c: Buffer) => {
      size += c.length
      if (size > init.maxBodyBytes) { tooLarge(res); req.destroy(); return }
      chunks.push(c)
    })
    req.on('end', () => {
      if (res.headersSent) return
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
      const exchange: Exchange = { res, waiting: new Set(), answers: [], batch, sse: false, done: false }
      const requests = transport.dispatch(messages, exchange, {
        requestInfo: { headers: req.headers },
        authInfo: init.authenticate?.(req),
      })
      if (requests === 0) {
        exchange.done = true
        res.writeHead(202).end()
        return
      }
      res.on('close', () => { if (!exchange.done) transport.abandon(exchange) })
    })
  }

  return {
    get url () { return url },
    get inflight () { return transport.inflight },
    get draining () { return draining },

    async start () {
      await init.mcp.connect(transport)
      server = (init.createServer ?? createServer)(handle)
      server.keepAliveTimeout = 65_000 // longer than common client pools' idle time, so they close first
      await new Promise<void>((resolve, reject) => {
        server!.once('error', reject)
        server!.listen(init.port, init.host, () => { server!.off('error', reject); resolve() })
      })
      const { port } = server.address() as AddressInfo
      const host = init.announceHost ?? init.host
      const scheme = 'cert' in server || 'setSecureContext' in server ? 'https' : 'http'
      url = `${scheme}://${host.includes(':') ? `[${host}]` : host}:${port}${MCP_PATH}`
    },

    async drain (graceMs) {
      draining = true
      let timer: ReturnType<typeof setTimeout> | undefined
      await Promise.race([
        transport.idle(),
        new Promise<void>((resolve) => { timer = setTimeout(resolve, graceMs) }),
      ])
      clearTimeout(timer)
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

/** Why a request's Host or Origin is refused (a page in a browser must not reach a local agent). */
function hostRefusal (req: IncomingMessage, allowed: string[] | undefined): string | undefined {
  const host = hostname(req.headers.host ?? '')
  if (allowed !== undefined && !allowed.includes(host)) return `Host ${host} is not allowed (http.allowedHosts)`
  const origin = req.headers.origin
  if (origin === undefined || origin === 'null') return undefined
  let originHost: string
  try {
    originHost = new URL(origin).hostname
  } catch {
    return 'Origin is malformed'
  }
  if (originHost !== host && !(allowed ?? []).includes(originHost)) return `Origin ${origin} is not allowed`
  return undefined
}

/** The host name of a Host header, without the port (IPv6 keeps its brackets). */
function hostname (header: string): string {
  const h = header.toLowerCase()
  if (h.startsWith('[')) return h.slice(0, h.indexOf(']') + 1)
  const colon = h.lastIndexOf(':')
  return colon === -1 ? h : h.slice(0, colon)
}

function isJsonRpc (m: unknown): m is JSONRPCMessage {
  return typeof m === 'object' && m !== null && (m as { jsonrpc?: unknown }).jsonrpc === '2.0' &&
    (typeof (m as { method?: unknown }).method === 'string' || 'result' in m || 'error' in m)
}

function json (res: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body)
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) }).end(text)
}

/** Refuses a POST with a JSON-RPC error body; mesh codes ride in `error.data.code`. */
function reject (res: ServerResponse, status: number, code: ErrorCode | undefined, message: string, rpcCode = -32000): void {
  const headers: Record<string, string> = {}
  if (status === 503) headers['retry-after'] = '1'
  const error = { code: rpcCode, message, ...(code === undefined ? {} : { data: { code } }) }
  const text = JSON.stringify({ jsonrpc: '2.0', id: null, error })
  res.writeHead(status, { ...headers, 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) }).end(text)
}

function tooLarge (res: ServerResponse): void {
  if (!res.headersSent) {
    res.setHeader('connection', 'close')
    reject(res, 413, 'MESH_ERR_SERVER_BODY_TOO_LARGE', 'the request body is larger than the limit (server.maxBodyBytes)')
  }
}
