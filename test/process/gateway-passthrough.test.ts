// What passes between an MCP host and a tool through `meshctl gateway`: the host is the SDK's
// Client over stdio, declaring sampling and elicitation and answering them; the provider is an
// agent process (test/fixtures/passthrough-agent.ts) whose tool logs, samples and elicits; mutual
// TLS on the defaults. The host's logging level applies; a host without a capability is not asked
// (the tool is told why); cancelling the host's call cancels what the host is being asked.
import t from 'tap'
import { Client } from '@modelcontextprotocol/sdk/client/index.js'
import { CreateMessageRequestSchema, ElicitRequestSchema, LoggingMessageNotificationSchema } from '@modelcontextprotocol/sdk/types.js'
import type { CallToolResult, ClientCapabilities, LoggingMessageNotification } from '@modelcontextprotocol/sdk/types.js'
import { spawn } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import type { SpanRecord } from '../../src/telemetry/span-ring.ts'
import { spawnExample } from '../helpers/agents.ts'
import { collect } from '../helpers/collect.ts'
import { gatewayMesh, root } from '../helpers/gateway-mesh.ts'
import { waitFor } from '../helpers/wait.ts'

t.setTimeout(180_000)

const m = await gatewayMesh(t, 'gw-pass')
m.agents.push(await spawnExample('test/fixtures/passthrough-agent.ts', [], m.env))

/** What the host saw: log messages, and the requests it was asked (with whether each was cancelled). */
interface Host { client: Client, logs: Array<LoggingMessageNotification['params']>, asked: Array<{ method: string, text?: string, cancelled: boolean }> }

/** Spawns the gateway over stdio as a host does, with `capabilities`; the host answers what it declared. */
async function host (capabilities: ClientCapabilities): Promise<Host> {
  const client = new Client({ name: 'test-host', version: '1.0.0' }, { capabilities })
  const h: Host = { client, logs: [], asked: [] }
  client.setNotificationHandler(LoggingMessageNotificationSchema, (n) => { h.logs.push(n.params) })
  if (capabilities.sampling !== undefined) {
    client.setRequestHandler(CreateMessageRequestSchema, async (req, extra) => {
      const content = req.params.messages[0].content
      const text = 'text' in content ? content.text : undefined
      const seen = { method: req.method, ...(text === undefined ? {} : { text }), cancelled: false }
      h.asked.push(seen)
      if (text === 'hold') {
        await new Promise<void>((resolve) => { extra.signal.addEventListener('abort', () => { seen.cancelled = true; resolve() }, { once: true }) })
      }
      return { role: 'assistant', model: 'host-model', content: { type: 'text', text: `the host says: ${text ?? ''}` } }
    })
  }
  if (capabilities.elicitation !== undefined) {
    client.setRequestHandler(ElicitRequestSchema, async (req) => {
      h.asked.push({ method: req.method, text: req.params.message, cancelled: false })
      return { action: 'accept', content: { choice: 'blue' } }
    })
  }
  await m.connect(client)
  await waitFor('the gateway lists the provider\'s tools', async () => (await client.listTools()).tools.length === 3, 30_000)
  return h
}

const structured = (r: unknown): unknown => (r as CallToolResult).structuredContent
const full = await host({ sampling: {}, elicitation: {} })

t.test('a tool\'s logs reach the host, and its sampling and elicitation are answered by the host', async (t) => {
  const r = await full.client.callTool({ name: 'consult', arguments: { topic: 'colour' } }) as CallToolResult
  t.notOk(r.isError)
  t.same(structured(r), { said: 'the host says: About colour?', action: 'accept', choice: 'blue' }, 'the tool completed with the host\'s answers')
  t.same(full.asked.map((a) => [a.method, a.text]), [['sampling/createMessage', 'About colour?'], ['elicitation/create', 'Which colour?']])
  t.same(full.logs, [
    { level: 'info', logger: 'consultant', data: { step: 'start', topic: 'colour' } },
    { level: 'warning', logger: 'consultant', data: { step: 'done' } },
  ], 'the provider\'s log messages, as the gateway\'s own logging')
})

t.test('the host\'s logging level applies', async (t) => {
  full.logs.length = 0
  await full.client.setLoggingLevel('warning')
  await full.client.callTool({ name: 'consult', arguments: { topic: 'shape' } })
  t.same(full.logs.map((l) => l.level), ['warning'], 'info is below the level the host set')
})

t.test('what the host did not declare is refused to the tool, saying why', async (t) => {
  t.match(structured(await full.client.callTool({ name: 'try', arguments: { what: 'sampling-tools' } })), { code: -32601, message: /did not declare the sampling with tools/ })
  t.match(structured(await full.client.callTool({ name: 'try', arguments: { what: 'roots' } })), { code: -32601, message: /passes only sampling\/createMessage and elicitation\/create/ })
  const bare = await host({})
  t.match(structured(await bare.client.callTool({ name: 'try', arguments: { what: 'sampling' } })), { code: -32601, message: /cannot answer sampling\/createMessage: it did not declare the sampling capability/ })
  t.match(structured(await bare.client.callTool({ name: 'try', arguments: { what: 'elicitation' } })), { code: -32601, message: /did not declare the elicitation capability/ })
  t.same(bare.asked, [], 'the host was asked nothing')
})

t.test('cancelling the host\'s call cancels what the host is being asked', async (t) => {
  const cancel = new AbortController()
  const held = full.asked.length
  // The host gives up on its call while it is answering the tool's question.
  const call = full.client.callTool({ name: 'hold', arguments: {} }, undefined, { signal: cancel.signal })
  call.catch(() => {})
  await waitFor('the host is asked', () => full.asked.length > held)
  cancel.abort()
  await t.rejects(call, 'the host\'s call ended')
  await waitFor('the gateway cancels its request to the host', () => full.asked[held].cancelled)
  t.pass('the host\'s handler saw the cancellation')
})

t.test('the host\'s trace context (in _meta over stdio) reaches the agents: their spans join its trace', async (t) => {
  const traceId = randomBytes(16).toString('hex')
  const hostSpan = randomBytes(8).toString('hex')
  const r = await full.client.callTool({ name: 'consult', arguments: { topic: 'trace' }, _meta: { traceparent: `00-${traceId}-${hostSpan}-01` } }) as CallToolResult
  t.notOk(r.isError)
  let spans: SpanRecord[] = []
  await waitFor('the provider\'s span of the call', async () => {
    const out = await collect(spawn(process.execPath, ['bin/meshctl.js', 'trace', traceId, '--json', '--bootstrap', m.env.MCP_MESH_BOOTSTRAP, '--mesh', m.env.MCP_MESH_NAMESPACE], {
      cwd: root, env: { ...process.env, MCP_MESH_HOME: m.home, NO_COLOR: '1' }, stdio: ['ignore', 'pipe', 'pipe'],
    }))
    spans = out.code === 0 ? (JSON.parse(out.out) as { spans: SpanRecord[] }).spans : []
    return spans.some((s) => s.kind === 1)
  }, 30_000)
  const served = spans.find((s) => s.kind === 1)!
  t.equal(served.traceId, traceId, 'the agent\'s span is in the host\'s trace')
  t.equal(served.parentSpanId, hostSpan, 'and its parent is the host\'s span')
  t.equal(served.agent, 'consultant')
})
