// Red team, caller side: the lean client against real node:http servers that are not MCP agents
// (or are, and lie). Every malformed answer is a typed MESH_ERR_CALL_FAILED; no foreign body
// reaches an error message; redirects are not followed; a bad URL is "not sent".
import t from 'tap'
import { McpHttpClient } from '../../src/proxy/mcp-client.ts'
import { isMeshError } from '../../src/errors.ts'
import { fakeProvider, json } from '../helpers/fake-provider.ts'
import type { FakeProvider, Misbehave } from '../helpers/fake-provider.ts'

const SECRET = 'ami-0123456789-SECRET'
const client = new McpHttpClient({ clientName: 'red-team' })
const servers: FakeProvider[] = []
t.teardown(async () => {
  await client.close()
  await Promise.all(servers.map((s) => s.close()))
})

async function serve (misbehave: Misbehave): Promise<FakeProvider> {
  const s = await fakeProvider({ misbehave })
  servers.push(s)
  return s
}

/** Calls a tool at `url` and returns the error it must fail with. */
async function failure (url: string): Promise<Error & { code?: string, details?: Record<string, unknown> }> {
  const err = await client.callTool(url, 'get_weather', { city: 'Oslo' }, { timeoutMs: 5_000 }).then(() => undefined, (e: unknown) => e)
  if (!(err instanceof Error)) throw new Error('the call succeeded')
  return err
}

/** Answers initialize with `body` (status 200, `type`); `tools/call` never comes. */
const onInitialize = (type: string, body: string, status = 200): Misbehave => (msg, res) => {
  if (msg.method !== 'initialize') return false
  res.writeHead(status, { 'content-type': type }).end(body)
  return true
}
/** Answers as an MCP agent, except `tools/call`, which gets `body`. */
const onCall = (type: string, body: (id: unknown) => string, status = 200): Misbehave => (msg, res) => {
  if (msg.method !== 'tools/call') return false
  res.writeHead(status, { 'content-type': type }).end(body(msg.id))
  return true
}

t.test('answers that are not MCP are MESH_ERR_CALL_FAILED, and nothing of their body is echoed', async (t) => {
  const html = `<html><body>${SECRET}</body></html>`
  const cases: Array<[string, Misbehave]> = [
    ['an HTML page', onInitialize('text/html', html)],
    ['HTML labelled as JSON', onInitialize('application/json', html)],
    ['{} (the old TypeError on protocolVersion)', onInitialize('application/json', '{}')],
    ['a JSON-RPC response with no result', onInitialize('application/json', JSON.stringify({ jsonrpc: '2.0', id: 1 }))],
    ['a JSON-RPC result that is not an initialize result', (msg, res) => {
      if (msg.method !== 'initialize') return false
      json(res, 200, { jsonrpc: '2.0', id: msg.id, result: { hello: SECRET } })
      return true
    }],
    ['an initialize result with an unknown protocol version', (msg, res) => {
      if (msg.method !== 'initialize') return false
      json(res, 200, { jsonrpc: '2.0', id: msg.id, result: { protocolVersion: `1999-${SECRET}`, capabilities: {}, serverInfo: { name: 'x', version: '1' } } })
      return true
    }],
    ['a response to another request', (msg, res) => {
      if (msg.method !== 'initialize') return false
      json(res, 200, { jsonrpc: '2.0', id: 'not-yours', result: {} })
      return true
    }],
    ['a JSON array', onInitialize('application/json', '[1,2,3]')],
    ['plain text', onInitialize('text/plain', SECRET)],
    ['no content type', onInitialize('', SECRET)],
    ['an event stream of garbage', onInitialize('text/event-stream', `data: <html>${SECRET}</html>\n\n`)],
    ['an event stream of JSON that is not JSON-RPC', onInitialize('text/event-stream', `data: {"secret":"${SECRET}"}\n\n`)],
    ['an event stream that ends without answering', onInitialize('text/event-stream', ': nothing here\n\n')],
    ['HTTP 500 with an HTML body', onInitialize('text/html', html, 500)],
    ['HTTP 404 with a text body', onInitialize('text/plain', SECRET, 404)],
    ['a tools/call result of the wrong shape', onCall('application/json', (id) => JSON.stringify({ jsonrpc: '2.0', id, result: { content: SECRET } }))],
    ['a tools/call answer that is HTML', onCall('text/html', () => html)],
    ['a tools/call event stream of garbage', onCall('text/event-stream', () => `data: ${SECRET}\n\n`)],
  ]
  for (const [what, misbehave] of cases) {
    const s = await serve(misbehave)
    const err = await failure(s.url)
    t.ok(isMeshError(err, 'MESH_ERR_CALL_FAILED'), `${what}: MESH_ERR_CALL_FAILED (got ${err.name} ${err.code ?? ''})`)
    t.notMatch(err.message, SECRET, `${what}: the body is not echoed`)
    t.notMatch(JSON.stringify(err.details ?? {}), SECRET, `${what}: nor put in details`)
  }
})

t.test('a redirect is not followed: not to a metadata address, not to another server', async (t) => {
  const elsewhere = await serve(() => false)
  for (const location of ['http://169.254.169.254/latest/meta-data/', elsewhere.url]) {
    const s = await serve((msg, res) => {
      res.writeHead(307, { location, 'content-type': 'text/html' }).end(`<a href="${location}">${SECRET}</a>`)
      return true
    })
    const err = await failure(s.url)
    t.ok(isMeshError(err, 'MESH_ERR_CALL_FAILED'), `307 to ${location}: MESH_ERR_CALL_FAILED`)
    t.match(err.details, { status: 307 })
    t.notMatch(err.message, SECRET)
    t.notMatch(err.message, location, 'the Location is not echoed either')
  }
  t.equal(elsewhere.received.length, 0, 'the redirect target never got a request')
})

t.test('a well-formed JSON-RPC error is quoted, bounded and stripped of control characters', async (t) => {
  const evil = `\u001b]0;owned\u0007\u001b[31mred\u202e${'x'.repeat(5_000)}`
  const s = await serve((msg, res) => {
    if (msg.method !== 'initialize') return false
    json(res, 400, { jsonrpc: '2.0', id: null, error: { code: -32600, message: evil } })
    return true
  })
  const err = await failure(s.url)
  t.ok(isMeshError(err, 'MESH_ERR_CALL_FAILED'))
  t.match(err.message, /HTTP 400: .*red/, 'the JSON-RPC message is quoted')
  t.notMatch(err.message, /[\u0000-\u001f\u007f-\u009f\u202e]/, 'without control or bidi characters')
  t.ok(err.message.length < 400, `bounded (${err.message.length} characters)`)

  const answered = await serve(onCall('application/json', (id) => JSON.stringify({ jsonrpc: '2.0', id, error: { code: -32000, message: evil } })))
  const rpc = await failure(answered.url)
  t.ok(isMeshError(rpc, 'MESH_ERR_CALL_FAILED'))
  t.notMatch(rpc.message, /[\u0000-\u001f\u007f-\u009f\u202e]/)
  t.ok(rpc.message.length < 400)
})

t.test('JSON-RPC invalid params (-32602) from a non-mesh MCP server is MESH_ERR_CALL_INVALID_ARGS', async (t) => {
  const s = await serve(onCall('application/json', (id) => JSON.stringify({ jsonrpc: '2.0', id, error: { code: -32602, message: 'city: expected string' } })))
  const err = await failure(s.url)
  t.ok(isMeshError(err, 'MESH_ERR_CALL_INVALID_ARGS'), `got ${err.code}`)
  t.match(err.details, { validation: 'city: expected string' })
})

t.test('a bad URL is "not sent" (MESH_ERR_CALL_UNREACHABLE), never a TypeError', async (t) => {
  for (const url of ['not a url', '', 'ftp://127.0.0.1/mcp', 'http://user:pw@127.0.0.1:9/mcp', 'javascript:alert(1)']) {
    const err = await failure(url)
    t.ok(isMeshError(err, 'MESH_ERR_CALL_UNREACHABLE'), `${JSON.stringify(url)}: got ${err.name} ${err.code ?? ''}`)
    t.equal(err.details?.notSent, true)
  }
  const before = client.size
  client.forget('not a url')
  t.equal(client.size, before, 'forgetting a bad URL is a no-op')
})

t.test('a good provider still works, with an SSE answer and progress; 503 is "not sent"', async (t) => {
  const s = await serve((msg, res) => {
    if (msg.method !== 'tools/call') return false
    res.writeHead(200, { 'content-type': 'text/event-stream' })
    res.write(`data: ${JSON.stringify({ jsonrpc: '2.0', method: 'notifications/progress', params: { progressToken: 1, progress: 1, total: 2 } })}\n\n`)
    res.end(`data: ${JSON.stringify({ jsonrpc: '2.0', id: msg.id, result: { content: [], structuredContent: { ok: true } } })}\n\n`)
    return true
  })
  const progress: number[] = []
  const r = await client.callTool(s.url, 'x', {}, { timeoutMs: 5_000, onProgress: (p) => progress.push(p.progress) })
  t.same(r.structuredContent, { ok: true })
  t.same(progress, [1])

  const busy = await serve(onCall('application/json', () => JSON.stringify({ jsonrpc: '2.0', id: null, error: { code: -32000, message: 'busy', data: { code: 'MESH_ERR_SERVER_BUSY' } } }), 503))
  const err = await failure(busy.url)
  t.ok(isMeshError(err, 'MESH_ERR_SERVER_BUSY'))
  t.equal(err.details?.notSent, true)
})

t.test('one call giving up while the provider\'s initialize is shared does not fail the calls waiting on it', async (t) => {
  // CI met it: a hedge's losing attempt, cancelled during the first initialize of a pool, failed
  // the next call on that pool with MESH_ERR_ABORTED.
  let release: () => void = () => {}
  const held = new Promise<void>((resolve) => { release = resolve })
  let initializes = 0
  const s = await serve((msg, res) => {
    if (msg.method !== 'initialize') return false
    initializes++
    void held.then(() => { json(res, 200, { jsonrpc: '2.0', id: msg.id, result: { protocolVersion: '2025-06-18', capabilities: { tools: {} }, serverInfo: { name: 'slow-start', version: '1.0.0' } } }) })
    return true
  })
  const ac = new AbortController()
  const first = client.callTool(s.url, 'x', {}, { signal: ac.signal }).then(() => 'answered', (e: unknown) => (e as { code?: string }).code)
  const second = client.callTool(s.url, 'x', {}, { timeoutMs: 5_000 })
  await new Promise((resolve) => setTimeout(resolve, 50))
  ac.abort()
  t.equal(await first, 'MESH_ERR_ABORTED', 'the call that gave up fails at once, with its own reason')
  release()
  t.same((await second).structuredContent, { by: 'fake' }, 'the other call waiting on the same initialize is answered')
  t.equal(initializes, 1, 'one initialize served both')
  const late = new AbortController()
  late.abort()
  t.equal(await client.callTool(s.url, 'x', {}, { signal: late.signal }).then(() => 'answered', (e: unknown) => (e as { code?: string }).code), 'MESH_ERR_ABORTED', 'a call already aborted is refused before it waits')
})
