// A real node:http server on loopback that answers MCP as a provider would, or misbehaves as told:
// the other end of red-team tests of the caller side.
import { createServer } from 'node:http'
import type { IncomingMessage, ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'
import { LATEST_PROTOCOL_VERSION } from '@modelcontextprotocol/sdk/types.js'

/** One JSON-RPC message a fake provider received (undefined fields when the body was not JSON-RPC). */
export interface Received { path: string, method?: string, id?: unknown, params?: { name?: string, arguments?: unknown } }

/**
 * Answers one request itself (return true) or lets the fake answer as an MCP server (false).
 * `req.method` is the HTTP method; `msg` the parsed JSON-RPC body.
 */
export type Misbehave = (msg: Received, res: ServerResponse, req: IncomingMessage) => boolean

/** A running fake provider. */
export interface FakeProvider {
  /** Its MCP endpoint, `http://<host>:<port>/mcp`. */
  readonly url: string
  readonly port: number
  /** Every request received, in order. */
  readonly received: Received[]
  close(): Promise<void>
}

/** The MCP answer to `msg` a well-behaved agent gives: initialize, the initialized notification, and `tools/call` through `call`. */
export function answerMcp (msg: Received, res: ServerResponse, call: (name: string, args: unknown) => unknown): void {
  if (msg.method === 'initialize') {
    json(res, 200, { jsonrpc: '2.0', id: msg.id, result: { protocolVersion: LATEST_PROTOCOL_VERSION, capabilities: { tools: {} }, serverInfo: { name: 'fake', version: '1.0.0' } } })
  } else if (msg.id === undefined) {
    res.writeHead(202).end()
  } else if (msg.method === 'tools/call') {
    json(res, 200, { jsonrpc: '2.0', id: msg.id, result: call(msg.params?.name ?? '', msg.params?.arguments) })
  } else {
    json(res, 200, { jsonrpc: '2.0', id: msg.id, error: { code: -32601, message: 'Method not found' } })
  }
}

/** Writes a JSON body. */
export function json (res: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body)
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) }).end(text)
}

/**
 * Starts a fake provider on `host` (any free port). By default it answers as an MCP agent whose
 * every tool returns `{ by: name }` as structured content; `misbehave` takes over any request.
 */
export async function fakeProvider (options: { host?: string, name?: string, call?: (name: string, args: unknown) => unknown, misbehave?: Misbehave } = {}): Promise<FakeProvider> {
  const host = options.host ?? '127.0.0.1'
  const by = options.name ?? 'fake'
  const call = options.call ?? (() => ({ content: [{ type: 'text', text: JSON.stringify({ by }) }], structuredContent: { by } }))
  const received: Received[] = []
  const server = createServer((req, res) => {
    const chunks: Buffer[] = []
    req.on('data', (c: Buffer) => chunks.push(c))
    req.on('end', () => {
      let msg: Received = { path: req.url ?? '' }
      try {
        msg = { ...(JSON.parse(Buffer.concat(chunks).toString('utf8')) as Received), path: req.url ?? '' }
      } catch {}
      received.push(msg)
      if (options.misbehave?.(msg, res, req) === true) return
      answerMcp(msg, res, call)
    })
  })
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject)
    server.listen(0, host, () => resolve())
  })
  const port = (server.address() as AddressInfo).port
  return {
    url: `http://${host}:${port}/mcp`,
    port,
    received,
    async close () {
      server.closeAllConnections()
      await new Promise<void>((resolve) => server.close(() => resolve()))
    },
  }
}
