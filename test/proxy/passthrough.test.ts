// Logging, sampling and elicitation from a provider's tool to its caller, between real agents:
// real libp2p, real HTTPS with mutual TLS (the default). A tool logs (`ctx.log`) and asks its
// caller (`ctx.mcp.sendRequest`); a dependency called with `onLog` and `onRequest` gets them, and
// the tool completes with the answers. A caller without a handler makes the request fail at once
// (JSON-RPC -32601, not the provider's 60 s timeout). What a provider may ask is bounded: only
// while its call is in flight, 8 at once. Then the red team: a raw HTTP provider that asks after
// its answer, sends garbage, or refuses the answer.
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t from 'tap'
import { z } from 'zod'
import { CreateMessageResultSchema, ElicitResultSchema, McpError } from '@modelcontextprotocol/sdk/types.js'
import type { CreateMessageRequest } from '@modelcontextprotocol/sdk/types.js'
import { createMeshNode } from '../../src/node.ts'
import type { MeshNode, ToolContext } from '../../src/node.ts'
import { McpHttpClient } from '../../src/proxy/mcp-client.ts'
import type { LogMessage, ServerRequestHandler } from '../../src/proxy/server-requests.ts'
import { testNodeOptions } from '../helpers/mesh.ts'
import { fakeProvider } from '../helpers/fake-provider.ts'
import type { FakeProvider, Misbehave } from '../helpers/fake-provider.ts'
import { waitFor } from '../helpers/wait.ts'

const MESH = `passthrough-${process.pid}`
t.setTimeout(180_000)
const home = await mkdtemp(join(tmpdir(), 'mesh-passthrough-'))
const nodes: MeshNode[] = []
const fakes: FakeProvider[] = []
const raw = new McpHttpClient({ clientName: 'red-team' })
t.teardown(async () => {
  await raw.close()
  await Promise.all(fakes.map(async (f) => f.close()))
  await Promise.all(nodes.map(async (n) => n.stop()))
  await rm(home, { recursive: true, force: true })
})

async function start (name: string, define: (n: MeshNode) => void, bootstrap: string[] = []): Promise<MeshNode> {
  const n = createMeshNode(testNodeOptions(MESH, name, { home, tls: { mode: 'strict' }, callTimeoutMs: 60_000, bootstrap }))
  define(n)
  nodes.push(n)
  await n.start()
  await n.ready()
  return n
}

const aborted = async (signal: AbortSignal): Promise<void> => new Promise((resolve) => {
  if (signal.aborted) resolve()
  else signal.addEventListener('abort', () => { resolve() }, { once: true })
})
const question = (text: string): CreateMessageRequest => ({ method: 'sampling/createMessage', params: { messages: [{ role: 'user', content: { type: 'text', text } }], maxTokens: 50 } })
const sample = async (ctx: ToolContext, text: string, options: { signal?: AbortSignal } = {}): Promise<string> => {
  const r = await ctx.mcp!.sendRequest(question(text), CreateMessageResultSchema, options)
  return r.content.type === 'text' ? r.content.text : '?'
}
/** The code and message of a failed request (what a tool sees of its caller's refusal). */
const refusal = (err: unknown): { code: unknown, message: string } => ({ code: (err as McpError).code, message: (err as Error).message })

/** The provider's side of the tools that withdraw or forget their requests, and of the flood. */
let withdrawn: AbortController | undefined
let flooded = 0
let sentBeforeReturning = false

const provider = await start('provider', (n) => {
  n.tool('consult', { input: { topic: z.string() } }, async ({ topic }, _d, ctx) => {
    await ctx.log('info', { step: 'start', topic })
    await ctx.log('debug', 'below the provider\'s level: not sent')
    const said = await sample(ctx, `About ${topic}?`)
    const form = await ctx.mcp!.sendRequest({ method: 'elicitation/create', params: { mode: 'form', message: 'Your name?', requestedSchema: { type: 'object', properties: { name: { type: 'string' } } } } }, ElicitResultSchema)
    await ctx.log('warning', 'done')
    return { said, action: form.action, name: form.content?.name }
  })
  // One request of the given kind; what came back, or how it failed.
  n.tool('probe', { input: { kind: z.enum(['sampling', 'elicitation', 'ping']) } }, async ({ kind }, _d, ctx) => {
    try {
      if (kind === 'sampling') return { said: await sample(ctx, 'hello?') }
      if (kind === 'ping') return { ping: await ctx.mcp!.sendRequest({ method: 'ping' }, z.object({}).loose()) }
      const r = await ctx.mcp!.sendRequest({ method: 'elicitation/create', params: { message: 'ok?', requestedSchema: { type: 'object', properties: {} } } }, ElicitResultSchema)
      return { action: r.action }
    } catch (err) {
      return refusal(err)
    }
  })
  // Asks, then withdraws the question once the caller's handler has it.
  n.tool('withdraw', {}, async (_a, _d, ctx) => {
    withdrawn = new AbortController()
    const r = await sample(ctx, 'never mind', { signal: withdrawn.signal }).then(() => 'answered', (err: unknown) => refusal(err).code)
    return { r }
  })
  // Asks without waiting for the answer, and returns.
  n.tool('forget', {}, async (_a, _d, ctx) => {
    sample(ctx, 'anyone?').catch(() => {})
    sentBeforeReturning = true
    return { returned: true }
  })
  // Nine questions at once: one more than a caller takes.
  n.tool('flood', {}, async (_a, _d, ctx) => {
    const all = Promise.allSettled(Array.from({ length: 9 }, async (_, i) => { flooded++; return await sample(ctx, `q${i}`, { signal: ctx.signal }) }))
    await Promise.race([all, aborted(ctx.signal)])
    return { flooded }
  })
  n.tool('sample_once', { input: { i: z.number() } }, async ({ i }, _d, ctx) => ({ said: await sample(ctx, `call ${i}`) }))
})
const caller = await start('caller', () => {}, provider.gossip.addrs)
await waitFor('the caller sees the provider', () => caller.explain('consult').ranked.length === 1 && caller.explain('sample_once').ranked.length === 1, 60_000)

/** A sampling answer: the question's text echoed. */
const echo = (params: Record<string, unknown> | undefined): Record<string, unknown> => {
  const text = (params as CreateMessageRequest['params']).messages[0].content
  return { role: 'assistant', model: 'test-model', content: { type: 'text', text: `the host says: ${'text' in text ? text.text : ''}` } }
}

t.test('a tool logs, samples and elicits through its caller, and completes with the answers', async (t) => {
  const logs: LogMessage[] = []
  const asked: string[] = []
  const result = await caller.dependency('consult')({ topic: 'tides' }, {
    onLog: (m) => { logs.push(m) },
    onRequest: async (method, params) => {
      asked.push(method)
      return method === 'sampling/createMessage' ? echo(params) : { action: 'accept', content: { name: 'Ada' } }
    },
  })
  t.same(result, { said: 'the host says: About tides?', action: 'accept', name: 'Ada' }, 'the tool got both answers')
  t.same(asked, ['sampling/createMessage', 'elicitation/create'], 'the handler was asked each, in order')
  t.same(logs, [
    { level: 'info', logger: 'provider', data: { step: 'start', topic: 'tides' } },
    { level: 'warning', logger: 'provider', data: 'done' },
  ], 'its log messages, before the result (the debug one is below the provider\'s level)')
})

t.test('a caller without a handler: the tool\'s request fails at once with -32601', async (t) => {
  const probe = caller.dependency('probe')
  // A hang would end in the provider's own timeout (-32001 after 60 s), not this code.
  t.match(await probe({ kind: 'sampling' }), { code: -32601, message: /takes no sampling\/createMessage requests/ })
  t.match(await probe({ kind: 'elicitation' }), { code: -32601 }, 'elicitation too')
  t.same(await probe({ kind: 'ping' }), { ping: {} }, 'a ping is answered without a handler')
  // A handler is per call: the same pool, another call with one, is answered.
  t.same(await probe({ kind: 'sampling' }, { onRequest: async (_m, p) => echo(p) }), { said: 'the host says: hello?' })
})

t.test('a handler\'s refusal reaches the tool with its code and message', async (t) => {
  const probe = caller.dependency('probe')
  const declined: ServerRequestHandler = async () => { throw new McpError(-1, 'the user declined') }
  t.same(await probe({ kind: 'sampling' }, { onRequest: declined }), { code: -1, message: 'MCP error -1: the user declined' }, 'its code, the message prefixed once')
  t.same(await probe({ kind: 'sampling' }, { onRequest: async () => { throw new Error('no model configured') } }), { code: -32603, message: 'MCP error -32603: no model configured' }, 'any other error is -32603')
  t.match(await probe({ kind: 'sampling' }, { onRequest: async () => 'not an object' as unknown as Record<string, unknown> }), { code: -32603, message: /not a JSON object/ }, 'a result that is not an object')
})

t.test('a request the provider withdraws aborts the handler', async (t) => {
  let handlerSignal: AbortSignal | undefined
  const call = caller.dependency('withdraw')({}, {
    onRequest: async (_m, _p, signal) => {
      handlerSignal = signal
      withdrawn!.abort('changed its mind')
      await aborted(signal)
      return { role: 'assistant', model: 'late', content: { type: 'text', text: 'too late' } }
    },
  })
  t.same(await call, { r: -32001 }, 'the tool saw its own cancellation')
  await waitFor('the handler is aborted', () => handlerSignal?.aborted === true)
  t.pass('the caller\'s handler saw the provider withdraw')
})

t.test('requests end with their call: a pending handler is aborted when the result arrives', async (t) => {
  let handlerSignal: AbortSignal | undefined
  const result = await caller.dependency('forget')({}, {
    onRequest: async (_m, _p, signal) => { handlerSignal = signal; await aborted(signal); return {} },
  })
  t.same(result, { returned: true })
  t.ok(sentBeforeReturning)
  await waitFor('the handler is asked and aborted', () => handlerSignal?.aborted === true)
  t.pass('aborted once the call ended')
})

t.test('more than 8 requests at once fail the call', async (t) => {
  const signals: AbortSignal[] = []
  const err = await caller.dependency('flood')({}, {
    onRequest: async (_m, _p, signal) => { signals.push(signal); await aborted(signal); return {} },
  }).then(() => undefined, (e: unknown) => e)
  t.match(err, { code: 'MESH_ERR_CALL_FAILED', details: { malformed: 'too many server requests', maxServerRequests: 8 } })
  t.equal(signals.length, 8, 'the handler was asked 8 times, not 9')
  t.ok(signals.every((s) => s.aborted), 'and every pending handler aborted with the call')
})

t.test('answers do not queue behind the calls waiting for them (more calls than pooled connections)', async (t) => {
  // 16 connections per provider: 16 calls hold them all with their streams while their tools wait
  // for answers. Answers on those connections would wait for a free one, which never comes.
  let arrived = 0
  const gate = Promise.withResolvers<void>()
  const onRequest: ServerRequestHandler = async (_m, params) => {
    if (++arrived >= 16) gate.resolve()
    await gate.promise
    return echo(params)
  }
  const calls = Array.from({ length: 17 }, async (_, i) => await caller.dependency('sample_once')({ i }, { onRequest, timeout: 30_000 }))
  const results = await Promise.all(calls)
  t.same(results.map((r) => (r as { said: string }).said), Array.from({ length: 17 }, (_, i) => `the host says: call ${i}`))
})

// Red team: the lean client against a raw HTTP provider that streams what it likes.

/** A fake provider whose `tools/call` streams `events(id)` and holds the stream until `answered` says what ends it. */
async function asking (events: (id: unknown) => object[], answered: (answer: Record<string, unknown>, headers: Record<string, unknown>) => { status: number, end?: object[] }): Promise<FakeProvider> {
  let held: { res: import('node:http').ServerResponse, id: unknown } | undefined
  const write = (res: import('node:http').ServerResponse, messages: object[]): void => {
    for (const m of messages) res.write(`event: message\ndata: ${JSON.stringify(m)}\n\n`)
  }
  const misbehave: Misbehave = (msg, res, req) => {
    if (msg.method === 'tools/call') {
      res.writeHead(200, { 'content-type': 'text/event-stream' })
      write(res, events(msg.id))
      held = { res, id: msg.id }
      return true
    }
    if (msg.method === undefined && msg.id !== undefined) {
      const { status, end } = answered(msg as unknown as Record<string, unknown>, req.headers)
      res.writeHead(status).end()
      if (end !== undefined && held !== undefined) { write(held.res, end); held.res.end() }
      return true
    }
    return false
  }
  const f = await fakeProvider({ misbehave })
  fakes.push(f)
  return f
}
const result = (id: unknown, text: string): object => ({ jsonrpc: '2.0', id, result: { content: [{ type: 'text', text }] } })
const ask = (id: unknown): object => ({ jsonrpc: '2.0', id, method: 'sampling/createMessage', params: question('x').params })

t.test('red team: the answer goes back on a POST with the protocol version; nothing asked after the result is answered', async (t) => {
  const answers: Array<{ answer: Record<string, unknown>, version: unknown }> = []
  let callId: unknown
  const f = await asking((id) => { callId = id; return [ask('q1'), { jsonrpc: '2.0', method: 'notifications/message', params: { level: 'loud', data: 'not a level' } }, ask({ not: 'an id' })] }, (answer, headers) => {
    answers.push({ answer, version: headers['mcp-protocol-version'] })
    // The result, then a request after it in the same write.
    return { status: 202, end: [result(callId, 'done'), ask('after')] }
  })
  const asked: unknown[] = []
  const logs: LogMessage[] = []
  const r = await raw.callTool(f.url, 'tool', {}, { timeoutMs: 10_000, onLog: (m) => { logs.push(m) }, onRequest: async (_m, p) => { asked.push(p); return echo(p) } })
  t.same(r.content, [{ type: 'text', text: 'done' }])
  t.equal(asked.length, 1, 'one request answered: not the one with an object ID, not the one after the result')
  t.match(answers, [{ answer: { jsonrpc: '2.0', id: 'q1', result: { content: { text: 'the host says: x' } } }, version: /^\d{4}-\d{2}-\d{2}$/ }])
  t.same(logs, [], 'a log message with an unknown level is dropped')
  t.equal(f.received.filter((m) => m.id === 'after').length, 0, 'nothing answered the request after the result')
})

t.test('red team: an answer the provider refuses fails the call at once instead of leaving it waiting', async (t) => {
  const f = await asking(() => [ask('q1')], () => ({ status: 503 }))
  const err = await raw.callTool(f.url, 'tool', {}, { timeoutMs: 30_000, onRequest: async (_m, p) => echo(p) }).then(() => undefined, (e: unknown) => e)
  t.match(err, { code: 'MESH_ERR_CALL_FAILED', message: /answer to the provider's sampling\/createMessage could not be delivered/ })
})
