// serveHttp with a stand-in gateway whose servers are counted: a request that opens no session
// (refused by the DNS rebinding check, or not an initialize) leaves no server behind.
import { request } from 'node:http'
import t from 'tap'
import { Server } from '@modelcontextprotocol/sdk/server/index.js'
import type { Gateway } from '../../src/gateway/gateway.ts'
import { serveHttp } from '../../src/gateway/http.ts'

let open = 0
const gateway: Gateway = {
  server () {
    const s = new Server({ name: 'stand-in', version: '1.0.0' }, { capabilities: { tools: {} } })
    open++
    s.onclose = () => { open-- }
    return s
  },
  tools: () => [],
  stop: async () => {},
}
const http = await serveHttp(gateway, { host: '127.0.0.1', port: 0 })
t.teardown(async () => { await http.close() })
const post = async (body: unknown, headers: Record<string, string> = {}): Promise<Response> => {
  const res = await fetch(http.url, { method: 'POST', headers: { 'content-type': 'application/json', accept: 'application/json, text/event-stream', ...headers }, body: JSON.stringify(body) })
  await res.body?.cancel()
  return res
}
const initialize = { jsonrpc: '2.0', id: 1, method: 'initialize', params: { protocolVersion: '2025-06-18', capabilities: {}, clientInfo: { name: 'probe', version: '1' } } }

t.test('requests that open no session leave no server open; an initialize keeps its own', async (t) => {
  t.equal((await post({ jsonrpc: '2.0', id: 1, method: 'tools/list' })).status, 400, 'not an initialize')
  t.equal(open, 0, 'its server was closed')
  const { port } = new URL(http.url)
  // fetch refuses to set Host: a raw request names another host, as a DNS-rebound page would.
  const status = await new Promise<number>((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path: '/mcp', method: 'POST', headers: { host: 'evil.example', 'content-type': 'application/json', accept: 'application/json, text/event-stream' } }, (res) => { res.resume(); resolve(res.statusCode ?? 0) })
    req.once('error', reject)
    req.end(JSON.stringify(initialize))
  })
  t.equal(status, 403, 'another Host is refused')
  t.equal(open, 0, 'its server was closed')
  const ok = await post(initialize)
  t.equal(ok.status, 200)
  t.ok(ok.headers.get('mcp-session-id'), 'a session')
  t.equal(open, 1, 'the session keeps its server')
})
