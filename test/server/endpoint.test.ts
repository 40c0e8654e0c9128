// The agent's MCP endpoint over real HTTP: the stock SDK client, raw requests, limits, health, drain.
import t from 'tap'
import { z } from 'zod'
import { request } from 'undici'
import { CreateMessageResultSchema } from '@modelcontextprotocol/sdk/types.js'
import { Client } from '@modelcontextprotocol/sdk/client/index.js'
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js'
import { createMeshNode } from '../../src/node.ts'
import type { MeshNode } from '../../src/node.ts'
import { McpHttpClient } from '../../src/proxy/mcp-client.ts'
import { MESH_ERROR_META_KEY } from '../../src/errors.ts'
import { testNodeOptions } from '../helpers/mesh.ts'
import { waitFor } from '../helpers/wait.ts'

const MESH = `endpoint-${process.pid}`
let release!: () => void
let gate = new Promise<void>((resolve) => { release = resolve })
let slowAborted = 0

function define (n: MeshNode): void {
  n.tool('echo', {
    description: 'Echoes a word',
    input: { word: z.string().min(1), times: z.number().int().min(1).max(3).default(1) },
    output: { echoed: z.string() },
  }, ({ word, times }) => ({ echoed: Array(times).fill(word).join(' ') }))
  n.tool('count', { input: { to: z.number().int().max(10) } }, async ({ to }, _deps, ctx) => {
    for (let i = 1; i <= to; i++) await ctx.progress({ progress: i, total: to, message: `step ${i}` })
    return { counted: to }
  })
  n.tool('slow', {}, async (_args, _deps, ctx) => {
    ctx.signal.addEventListener('abort', () => { slowAborted++ })
    await Promise.race([gate, new Promise((resolve) => ctx.signal.addEventListener('abort', resolve))])
    return 'done'
  })
  n.tool('ask', { input: { i: z.number() } }, async ({ i }, _deps, ctx) => {
    const r = await ctx.mcp!.sendRequest({ method: 'sampling/createMessage', params: { messages: [{ role: 'user', content: { type: 'text', text: `q${i}` } }], maxTokens: 5 } }, CreateMessageResultSchema, { signal: ctx.signal })
    return { said: r.content.type === 'text' ? r.content.text : '?' }
  })
  n.tool('fails', {}, () => { throw new Error('the tool broke') })
  n.tool('liar', { output: { n: z.number() } }, () => ({ n: 'not a number' }))
  n.tool('own_error', {}, () => ({ isError: true, content: [{ type: 'text', text: 'an error of the tool\'s own' }] }))
}

const node = createMeshNode(testNodeOptions(MESH, 'endpoint', { http: { maxBodyBytes: 2048, maxConcurrentCalls: 2 }, drainGraceMs: 5_000 }))
define(node)
t.teardown(() => node.stop())

const post = async (body: unknown, headers: Record<string, string> = {}): Promise<{ status: number, type: string, text: string }> => {
  const res = await request(node.url, {
    method: 'POST',
    headers: { 'content-type': 'application/json', accept: 'application/json, text/event-stream', ...headers },
    body: typeof body === 'string' ? body : JSON.stringify(body),
  })
  return { status: res.statusCode, type: String(res.headers['content-type'] ?? ''), text: await res.body.text() }
}
const call = (name: string, args: unknown, id = 1): unknown => ({ jsonrpc: '2.0', id, method: 'tools/call', params: { name, arguments: args } })

t.test('readyz says starting before start, ready after the first sync', async (t) => {
  await node.start()
  await node.ready()
  await waitFor('readyz', async () => (await request(node.url.replace('/mcp', '/readyz'))).statusCode === 200)
  const health = await request(node.url.replace('/mcp', '/healthz'))
  t.equal(health.statusCode, 200)
  t.same(await health.body.json(), { status: 'ok' })
})

t.test('the stock MCP SDK client lists and calls tools', async (t) => {
  const client = new Client({ name: 'stock', version: '1.0.0' })
  const transport = new StreamableHTTPClientTransport(new URL(node.url))
  await client.connect(transport)
  const { tools } = await client.listTools()
  t.same(tools.map((x) => x.name).sort(), ['ask', 'count', 'echo', 'fails', 'liar', 'own_error', 'slow'])
  t.ok(tools.every((x) => typeof x.description === 'string' && x.description.length > 0), 'every tool has a description, declared or by default')
  const echo = tools.find((x) => x.name === 'echo')!
  t.same(echo.inputSchema.required, ['word'], 'the input JSON schema is published')
  t.equal((echo.inputSchema.properties as Record<string, { type?: string }>).word.type, 'string')
  t.ok(echo.outputSchema, 'the output schema is published')
  const r = await client.callTool({ name: 'echo', arguments: { word: 'hi', times: 2 } })
  t.same(r.structuredContent, { echoed: 'hi hi' })

  const progress: number[] = []
  const counted = await client.callTool({ name: 'count', arguments: { to: 3 } }, undefined, { onprogress: (p) => { progress.push(p.progress) } })
  t.same(counted.structuredContent, { counted: 3 })
  t.same(progress, [1, 2, 3], 'progress notifications reach the stock client on the POST stream')
  await client.close()
})

t.test('failures the mesh detects carry their code in _meta; the text stays in content', async (t) => {
  type Result = { isError?: boolean, content: Array<{ type: string, text?: string }>, _meta?: Record<string, { code: string, issues?: Array<{ path: unknown[] }> }> }
  const result = async (name: string, args: unknown): Promise<Result> => {
    const res = await post(call(name, args))
    t.equal(res.status, 200)
    const body = JSON.parse(res.text) as { id: number, result: Result }
    t.equal(body.id, 1, 'the client\'s own request ID comes back')
    return body.result
  }
  const invalid = await result('echo', { word: '', times: 9 })
  t.equal(invalid.isError, true)
  t.equal(invalid._meta?.[MESH_ERROR_META_KEY].code, 'MESH_ERR_CALL_INVALID_ARGS')
  t.same(invalid._meta?.[MESH_ERROR_META_KEY].issues?.map((i) => i.path), [['word'], ['times']], 'the zod issues name the fields')
  t.ok((invalid.content[0].text ?? '').length > 0, 'a human text is kept for plain MCP clients')

  const output = await result('liar', {})
  t.equal(output._meta?.[MESH_ERROR_META_KEY].code, 'MESH_ERR_CALL_INVALID_OUTPUT')
  t.same(output._meta?.[MESH_ERROR_META_KEY].issues?.map((i) => i.path), [['n']])
  t.equal((await result('fails', {}))._meta?.[MESH_ERROR_META_KEY].code, 'MESH_ERR_CALL_TOOL_ERROR')
  t.equal((await result('nope', {}))._meta?.[MESH_ERROR_META_KEY].code, 'MESH_ERR_CALL_UNKNOWN_TOOL')
  const own = await result('own_error', {})
  t.equal(own.isError, true)
  t.equal(own._meta, undefined, 'a tool\'s own isError result carries no mesh code')

  const client = new McpHttpClient({ clientName: 'lean' })
  t.teardown(() => client.close())
  const lean = await client.callTool(node.url, 'echo', { word: 3 }, { timeoutMs: 5_000 })
  t.equal(lean.isError, true)
  const broke = await client.callTool(node.url, 'fails', {}, { timeoutMs: 5_000 })
  t.match(broke.content[0], { type: 'text', text: 'the tool broke' })
})

t.test('protocol rules: JSON and SSE answers, batches, parse errors, methods, versions', async (t) => {
  const progress = await post({ jsonrpc: '2.0', id: 'p', method: 'tools/call', params: { name: 'count', arguments: { to: 2 }, _meta: { progressToken: 'tok' } } })
  t.match(progress.type, /text\/event-stream/, 'a call that reports progress is answered on an SSE stream')
  const events = progress.text.split('\n').filter((l) => l.startsWith('data: ')).map((l) => JSON.parse(l.slice(6)) as { method?: string, id?: string, params?: { progressToken?: string } })
  t.same(events.map((e) => e.method ?? `answer:${e.id}`), ['notifications/progress', 'notifications/progress', 'answer:p'])
  t.equal(events[0].params?.progressToken, 'tok')

  const batch = await post([call('echo', { word: 'a' }, 1), call('echo', { word: 'b' }, 2)])
  const answers = JSON.parse(batch.text) as Array<{ id: number, result: { structuredContent: unknown } }>
  t.same(answers.map((a) => [a.id, a.result.structuredContent]), [[1, { echoed: 'a' }], [2, { echoed: 'b' }]], 'a batch is answered in order')

  const unknownMethod = await post({ jsonrpc: '2.0', id: 9, method: 'resources/list' })
  t.match(JSON.parse(unknownMethod.text), { id: 9, error: { code: -32601 } }, 'an unknown method is answered at once with method not found')
  t.equal((await post('{nope')).status, 400, 'malformed JSON is a 400 parse error')
  t.match(JSON.parse((await post('{nope')).text), { error: { code: -32700 } })
  t.equal((await post({ hello: 1 })).status, 400, 'a non-JSON-RPC body is a 400')
  t.equal((await post({ jsonrpc: '2.0', method: 'notifications/initialized' })).status, 202, 'notifications are accepted with 202')
  t.equal((await post(call('echo', { word: 'a' }), { 'content-type': 'text/plain' })).status, 415)
  t.equal((await post(call('echo', { word: 'a' }), { 'mcp-protocol-version': '1999-01-01' })).status, 400, 'an unsupported protocol version is refused')
  const evil = await post({ jsonrpc: '2.0', id: 1, method: 'ping' }, { host: 'evil.example.com', origin: 'http://evil.example.com' })
  t.equal(evil.status, 403, 'a loopback agent refuses another Host (DNS rebinding)')
  const origin = await post({ jsonrpc: '2.0', id: 1, method: 'ping' }, { origin: 'http://evil.example.com' })
  t.equal(origin.status, 403, 'and a browser Origin of another site')
  const get = await request(node.url)
  t.equal(get.statusCode, 405, 'no server-initiated stream: GET is 405')
  await get.body.dump()
})

t.test('body size and concurrency limits refuse with clear errors', async (t) => {
  const big = await post(call('echo', { word: 'x'.repeat(4096) }))
  t.equal(big.status, 413)
  t.match(JSON.parse(big.text), { error: { data: { code: 'MESH_ERR_SERVER_BODY_TOO_LARGE' } } })

  gate = new Promise<void>((resolve) => { release = resolve })
  const a = post(call('slow', {}, 1))
  const b = post(call('slow', {}, 2))
  await waitFor('two slow calls in flight', () => endpointInflight() >= 2)
  const busy = await post(call('echo', { word: 'x' }))
  t.equal(busy.status, 503, 'a third concurrent request is refused')
  t.match(JSON.parse(busy.text), { error: { data: { code: 'MESH_ERR_SERVER_BUSY' } } })
  const client = new McpHttpClient({ clientName: 'lean' })
  t.teardown(() => client.close())
  await t.rejects(client.callTool(node.url, 'echo', { word: 'x' }, { timeoutMs: 5_000 }), { code: 'MESH_ERR_SERVER_BUSY' }, 'the lean client reports the mesh code')
  release()
  t.same((await Promise.all([a, b])).map((r) => r.status), [200, 200])
})

t.test('at the limit, answers to the provider\'s requests still get through: the calls waiting for them complete', async (t) => {
  // Both slots are taken by calls that each wait for a sampling answer; the answers, POSTed on
  // connections of their own, only once both calls are in flight, must not be refused as a third call.
  const client = new McpHttpClient({ clientName: 'sampler' })
  t.teardown(() => client.close())
  const busyBefore = node.endpointStats?.dropped.busy ?? 0
  let asked = 0
  let bothAsked!: () => void
  const both = new Promise<void>((resolve) => { bothAsked = resolve })
  const onRequest = async (_method: string, params: Record<string, unknown> | undefined): Promise<Record<string, unknown>> => {
    if (++asked === 2) bothAsked()
    await both
    const text = (params as { messages: Array<{ content: { text: string } }> }).messages[0].content.text
    return { role: 'assistant', model: 'm', content: { type: 'text', text: `a${text}` } }
  }
  const calls = Promise.all([1, 2].map(async (i) => await client.callTool(node.url, 'ask', { i }, { timeoutMs: 10_000, onRequest })))
  await both
  t.equal(endpointInflight(), 2, 'both calls hold their slots before the answers are sent')
  const notice = await post({ jsonrpc: '2.0', method: 'notifications/cancelled', params: { requestId: 'none of mine', reason: 'test' } })
  t.equal(notice.status, 202, 'a notification is taken at the limit too')
  const results = await calls
  t.same(results.map((r) => r.structuredContent), [{ said: 'aq1' }, { said: 'aq2' }], 'both calls completed with their answers')
  t.equal(node.endpointStats?.dropped.busy ?? 0, busyBefore, 'nothing was refused as busy')
})

t.test('the client refuses an answer larger than maxResponseBytes', async (t) => {
  const client = new McpHttpClient({ clientName: 'capped', maxResponseBytes: 1024 })
  t.teardown(() => client.close())
  const small = await client.callTool(node.url, 'echo', { word: 'ok' }, { timeoutMs: 5_000 })
  t.same(small.structuredContent, { echoed: 'ok' })
  await t.rejects(client.callTool(node.url, 'echo', { word: 'x'.repeat(1500), times: 3 }, { timeoutMs: 5_000 }),
    { code: 'MESH_ERR_CALL_FAILED', details: { maxResponseBytes: 1024 } })
})

t.test('a client that disconnects aborts its handler', async (t) => {
  gate = new Promise<void>((resolve) => { release = resolve })
  const before = slowAborted
  const ac = new AbortController()
  const pending = request(node.url, {
    method: 'POST',
    headers: { 'content-type': 'application/json', accept: 'application/json, text/event-stream' },
    body: JSON.stringify(call('slow', {})),
    signal: ac.signal,
  }).catch(() => undefined)
  await waitFor('slow call in flight', () => endpointInflight() >= 1)
  ac.abort()
  await pending
  await waitFor('handler signal aborted', () => slowAborted > before)
  t.equal(endpointInflight(), 0, 'nothing is left in flight')
  release()
})

t.test('drain: a call in flight completes, new calls are refused, readyz says draining', async (t) => {
  gate = new Promise<void>((resolve) => { release = resolve })
  const inflight = post(call('slow', {}))
  await waitFor('slow call in flight', () => endpointInflight() >= 1)
  const stopping = node.stop()
  await waitFor('readyz 503', async () => (await request(node.url.replace('/mcp', '/readyz'))).statusCode === 503)
  const ready = await request(node.url.replace('/mcp', '/readyz'))
  t.same(await ready.body.json(), { status: 'draining' })
  const refused = await post(call('echo', { word: 'late' }))
  t.equal(refused.status, 503)
  t.match(JSON.parse(refused.text), { error: { data: { code: 'MESH_ERR_SERVER_DRAINING' } } })
  release()
  const done = await inflight
  t.equal(done.status, 200, 'the call in flight finished')
  t.match(JSON.parse(done.text), { result: { content: [{ text: 'done' }] } })
  await stopping
  await t.rejects(request(node.url.replace('/mcp', '/healthz')), 'the listener is closed after the drain')
})

function endpointInflight (): number {
  return node.inflight
}
