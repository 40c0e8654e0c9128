import { randomUUID, timingSafeEqual, createHash } from 'node:crypto'
import { createServer } from 'node:http'
import type { IncomingMessage, ServerResponse } from 'node:http'
import { isIP } from 'node:net'
import { StreamableHTTPServerTransport } from '@modelcontextprotocol/sdk/server/streamableHttp.js'
import type { Gateway } from './gateway.ts'

/** Where and how the gateway serves Streamable HTTP. */
export interface GatewayHttpInit {
  host: string
  port: number
  /** Required bearer token (`Authorization: Bearer <token>`); none: anyone who can connect may call. */
  token?: string
  /** Named tool sets, each served at `/mcp/<name>` beside `/mcp` (its own gateway, its own filter). */
  sets?: ReadonlyMap<string, Gateway>
}

/** A running HTTP endpoint of the gateway. */
export interface GatewayHttp {
  /** The MCP endpoint, `http://host:port/mcp`. */
  readonly url: string
  /** Closes every session and socket. Idempotent. */
  close(): Promise<void>
}

/** Whether `host` names only this machine (a bind there is unreachable from elsewhere). */
export function isLoopback (host: string): boolean {
  const h = host.replace(/^\[|\]$/g, '')
  if (h === 'localhost') return true
  if (isIP(h) === 4) return h.startsWith('127.')
  return h === '::1'
}

/** Same length digests, so the comparison takes the same time whatever the token. */
function sameToken (given: string, token: string): boolean {
  const a = createHash('sha256').update(given).digest()
  const b = createHash('sha256').update(token).digest()
  return timingSafeEqual(a, b)
}

/**
 * Serves the gateway over Streamable HTTP at `/mcp`, and each tool set at `/mcp/<name>`: one MCP
 * session (one `Server`) per host, so each host gets its own `tools/list_changed`. A loopback bind
 * refuses other Host headers (DNS rebinding); with a token, a request without
 * `Authorization: Bearer <token>` gets 401.
 */
export async function serveHttp (gateway: Gateway, init: GatewayHttpInit, signal?: AbortSignal): Promise<GatewayHttp> {
  const routes = new Map<string, Gateway>([['/mcp', gateway], ...[...init.sets ?? []].map(([name, g]) => [`/mcp/${name}`, g] as const)])
  // A session belongs to the path it was opened on: its id does not open another set.
  const sessions = new Map<string, { path: string, transport: StreamableHTTPServerTransport }>()
  let allowedHosts: string[] | undefined

  const handle = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    const path = new URL(req.url ?? '/', 'http://x').pathname
    const route = routes.get(path)
    if (route === undefined) { res.writeHead(404).end(); return }
    if (init.token !== undefined) {
      const auth = req.headers.authorization ?? ''
      if (!auth.startsWith('Bearer ') || !sameToken(auth.slice(7), init.token)) {
        res.writeHead(401, { 'www-authenticate': 'Bearer', 'content-type': 'application/json' })
        res.end(JSON.stringify({ jsonrpc: '2.0', error: { code: -32001, message: 'unauthorized: send Authorization: Bearer <token>' }, id: null }))
        return
      }
    }
    const id = req.headers['mcp-session-id']
    const session = typeof id === 'string' ? sessions.get(id) : undefined
    let transport = session?.path === path ? session.transport : undefined
    const opening = transport === undefined
    if (transport === undefined) {
      if (id !== undefined || req.method !== 'POST') {
        res.writeHead(404, { 'content-type': 'application/json' })
        res.end(JSON.stringify({ jsonrpc: '2.0', error: { code: -32001, message: 'no such session: initialize first' }, id: null }))
        return
      }
      // A new session: the transport refuses anything but an initialize request without one.
      const t: StreamableHTTPServerTransport = new StreamableHTTPServerTransport({
        sessionIdGenerator: randomUUID,
        onsessioninitialized: (sid) => { sessions.set(sid, { path, transport: t }) },
        ...(allowedHosts === undefined ? {} : { allowedHosts, enableDnsRebindingProtection: true }),
      })
      t.onclose = () => { if (t.sessionId !== undefined) sessions.delete(t.sessionId) }
      await route.server().connect(t)
      transport = t
    }
    await transport.handleRequest(req, res)
    // Refused, or not an initialize: no session opened, so nothing else would ever close its server.
    if (opening && transport.sessionId === undefined) await transport.close()
  }

  const http = createServer((req, res) => {
    handle(req, res).catch(() => { if (!res.headersSent) res.writeHead(500).end(); else res.end() })
  })
  await new Promise<void>((resolve, reject) => {
    const onAbort = (): void => { http.close(); reject(signal!.reason) }
    signal?.addEventListener('abort', onAbort, { once: true })
    http.once('error', reject)
    http.listen(init.port, init.host.replace(/^\[|\]$/g, ''), () => { signal?.removeEventListener('abort', onAbort); resolve() })
  })
  const address = http.address()
  const port = typeof address === 'object' && address !== null ? address.port : init.port
  const shown = isIP(init.host.replace(/^\[|\]$/g, '')) === 6 ? `[${init.host.replace(/^\[|\]$/g, '')}]` : init.host
  if (isLoopback(init.host)) allowedHosts = ['127.0.0.1', 'localhost', '[::1]'].flatMap((h) => [h, `${h}:${port}`])
  let closed: Promise<void> | undefined
  return {
    url: `http://${shown}:${port}/mcp`,
    close () {
      closed ??= (async () => {
        await Promise.all([...sessions.values()].map((s) => s.transport.close().catch(() => {})))
        sessions.clear()
        await new Promise<void>((resolve) => { http.close(() => { resolve() }); http.closeAllConnections() })
      })()
      return closed
    },
  }
}
