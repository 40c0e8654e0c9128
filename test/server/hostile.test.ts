// Hostile callers at the agent's endpoint, over real sockets: batches past the limit, half-sent
// bodies, slowloris, too many connections, clients that never read, and one caller cancelling or
// answering another caller's request.
import t from 'tap'
import { connect } from 'node:net'
import type { Socket } from 'node:net'
import { z } from 'zod'
import { Client } from 'undici'
import type { Dispatcher } from 'undici'
import { ElicitResultSchema } from '@modelcontextprotocol/sdk/types.js'
import type { MeshNode } from '../../src/node.ts'
import type { MeshNodeSeam } from '../../src/node.ts'
import { createMeshNode } from '../../src/node.ts'
import type { MeshNodeOptionsInput } from '../../src/config.ts'
import { testNodeOptions } from '../helpers/mesh.ts'
import { waitFor } from '../helpers/wait.ts'

const MESH = `hostile-${process.pid}`
const nodes: MeshNode[] = []
const sockets: Socket[] = []
const clients: Client[] = []
t.teardown(async () => {
  for (const s of sockets) s.destroy()
  await Promise.all(clients.map((c) => c.destroy()))
  await Promise.all(nodes.map((n) => n.stop()))
})

/** Counts handler runs and aborts, and holds slow handlers until released. */
const seen = { ran: 0, aborted: 0 }
let release!: () => void
let gate = new Promise<void>((resolve) => { release = resolve })
const reopen = (): void => { gate = new Promise<void>((resolve) => { release = resolve }) }
const aborted = (signal: AbortSignal): Promise<void> => new Promise((resolve) => {
  if (signal.aborted) resolve()
  signal.addEventListener('abort', () => resolve(), { once: true })
})

async function agent (name: string, extra: Partial<MeshNodeOptionsInput>, seam: MeshNodeSeam = {}): Promise<MeshNode> {
  const n = createMeshNode(testNodeOptions(MESH, name, extra), seam)
  n.tool('echo', { input: { word: z.string() } }, ({ word }) => ({ word }))
  n.tool('slow', {}, async (_a, _d, ctx) => {
    seen.ran++
    ctx.signal.addEventListener('abort', () => { seen.aborted++ })
    await Promise.race([gate, aborted(ctx.signal)])
    return 'done'
  })
  n.tool('ask', {}, async (_a, _d, ctx) => {
    const answer = await ctx.mcp!.sendRequest({
      method: 'elicitation/create',
      params: { message: 'who are you?', requestedSchema: { type: 'object', properties: { name: { type: 'string' } } } },
    }, ElicitResultSchema, { signal: ctx.signal })
    return { name: answer.content?.name }
  })
  nodes.push(n)
  await n.start()
  return n
}

/** A client of its own: one connection, which is what scopes a caller without identity. */
function caller (n: MeshNode): Client {
  const c = new Client(new URL(n.url).origin, { pipelining: 0 })
  clients.push(c)
  return c
}

const call = (name: string, id: number | string, args: unknown = {}): unknown => ({ jsonrpc: '2.0', id, method: 'tools/call', params: { name, arguments: args } })
const cancel = (requestId: number | string): unknown => ({ jsonrpc: '2.0', method: 'notifications/cancelled', params: { requestId, reason: 'mine now' } })

/** One POST on the caller's own connection. */
async function send (c: Dispatcher, body: unknown, headers: Record<string, string>, timeoutMs: number): Promise<Dispatcher.ResponseData> {
  return await c.request({
    path: '/mcp',
    method: 'POST',
    headers: { 'content-type': 'application/json', accept: 'application/json, text/event-stream', ...headers },
    body: JSON.stringify(body),
    signal: AbortSignal.timeout(timeoutMs),
  })
}

async function post (c: Dispatcher, body: unknown, headers: Record<string, string> = {}): Promise<{ status: number, body: string }> {
  const res = await send(c, body, headers, 10_000)
  return { status: res.statusCode, body: await res.body.text() }
}

/** Starts a POST whose SSE answer is read as it comes: `events` fills up, `done` resolves at its end. */
function streamed (c: Dispatcher, body: unknown, headers: Record<string, string> = {}) {
  const events: Array<{ id?: unknown, method?: string, result?: unknown }> = []
  const done = (async () => {
    const res = await send(c, body, headers, 20_000)
    let buf = ''
    for await (const chunk of res.body) {
      buf += String(chunk)
      let end: number
      while ((end = buf.indexOf('\n\n')) !== -1) {
        const data = buf.slice(0, end).split('\n').find((l) => l.startsWith('data: '))
        buf = buf.slice(end + 2)
        if (data !== undefined) events.push(JSON.parse(data.slice(6)))
      }
    }
    return { status: res.statusCode, events }
  })()
  return { events, done }
}

/** A raw TCP connection to the agent, for what no HTTP client sends. */
async function raw (n: MeshNode): Promise<{ socket: Socket, received: () => string, closed: Promise<void> }> {
  const { hostname, port } = new URL(n.url)
  const socket = connect(Number(port), hostname)
  sockets.push(socket)
  let got = ''
  socket.on('data', (d: Buffer) => { got += d.toString('latin1') })
  socket.on('error', () => {})
  const closed = new Promise<void>((resolve) => socket.once('close', () => resolve()))
  await new Promise<void>((resolve, reject) => { socket.once('connect', resolve); socket.once('error', reject) })
  return { socket, received: () => got, closed }
}

const postHead = (n: MeshNode, length: number): string =>
  `POST /mcp HTTP/1.1\r\nHost: ${new URL(n.url).host}\r\nContent-Type: application/json\r\nAccept: application/json, text/event-stream\r\nContent-Length: ${length}\r\n\r\n`

/** How many messages or connections the agent dropped for `reason` (0 for none). */
const dropped = (n: MeshNode, reason: string): number => n.endpointStats?.dropped[reason] ?? 0

/** Resolves when `p` settles within `ms`; false when it did not (the defect: nothing happened). */
async function within (p: Promise<unknown>, ms: number): Promise<boolean> {
  let timer: ReturnType<typeof setTimeout> | undefined
  const timeout = new Promise<false>((resolve) => { timer = setTimeout(() => resolve(false), ms) })
  const settled = await Promise.race([p.then(() => true as const), timeout])
  clearTimeout(timer)
  return settled
}

const limited = await agent('limited', { http: { maxConcurrentCalls: 3 } })

t.test('a batch counts every request it carries against maxConcurrentCalls', async (t) => {
  reopen()
  const ran = seen.ran
  const c = caller(limited)
  const batch = await post(c, [call('slow', 1), call('slow', 2), call('slow', 3), call('slow', 4)])
  t.equal(batch.status, 503, 'a batch of 4 calls is refused by an agent that serves 3 at once')
  t.match(JSON.parse(batch.body), { error: { data: { code: 'MESH_ERR_SERVER_BUSY' } } })
  t.equal(seen.ran, ran, 'none of its calls ran')

  const one = post(caller(limited), call('slow', 1))
  await waitFor('one call in flight', () => limited.inflight === 1, 5_000)
  t.equal((await post(c, [call('slow', 2), call('slow', 3), call('slow', 4)])).status, 503, 'a batch of 3 with one call in flight is refused')
  const two = post(c, [call('slow', 2), call('slow', 3)])
  await waitFor('a batch of 2 beside it is served', () => limited.inflight === 3, 5_000)
  t.equal(seen.ran, ran + 3)
  release()
  t.equal((await one).status, 200)
  const answers = JSON.parse((await two).body) as Array<{ id: number }>
  t.same(answers.map((a) => a.id), [2, 3])
  t.equal(dropped(limited, 'busy'), 2)
})

t.test('bodies still arriving are bounded from the first byte', async (t) => {
  const half = await Promise.all([raw(limited), raw(limited), raw(limited)])
  const body = JSON.stringify(call('echo', 9, { word: 'x' }))
  for (const h of half) h.socket.write(postHead(limited, body.length) + body.slice(0, 10))
  await waitFor('three half-sent bodies counted', () => limited.inflight === 3, 5_000)
  const refused = await post(caller(limited), call('echo', 1, { word: 'y' }))
  t.equal(refused.status, 503, 'a full request is refused while three bodies trickle in')
  t.match(JSON.parse(refused.body), { error: { data: { code: 'MESH_ERR_SERVER_BUSY' } } })
  half[0].socket.destroy()
  await waitFor('an abandoned body frees its slot', () => limited.inflight === 2, 5_000)
  half[1].socket.write(body.slice(10))
  await waitFor('a body completed late is served', () => half[1].received().includes('"word":"x"'), 5_000)
  t.equal((await post(caller(limited), call('echo', 2, { word: 'z' }))).status, 200, 'a slot is free again')
  for (const h of half) h.socket.destroy()
  await waitFor('every slot released', () => limited.inflight === 0, 5_000)
})

t.test('a caller cannot cancel another caller\'s request by its ID', async (t) => {
  reopen()
  const before = { ...seen }
  const alice = post(caller(limited), call('slow', 7))
  await waitFor('alice\'s call running', () => seen.ran === before.ran + 1, 5_000)
  const unmatched = dropped(limited, 'cancel-unmatched')
  const mallory = await post(caller(limited), cancel(7))
  t.equal(mallory.status, 202)
  t.equal(seen.aborted, before.aborted, 'alice\'s handler is not aborted by another connection\'s cancel')
  t.equal(dropped(limited, 'cancel-unmatched'), unmatched + 1, 'the foreign cancel is dropped and counted')
  release()
  const done = await alice
  t.equal(done.status, 200)
  t.match(JSON.parse(done.body), { id: 7, result: { content: [{ text: 'done' }] } }, 'alice gets her answer')
})

t.test('a caller cannot answer another caller\'s elicitation request', async (t) => {
  const alice = streamed(caller(limited), call('ask', 'a1'))
  await waitFor('the elicitation request reaches alice', () => alice.events.some((e) => e.method === 'elicitation/create'), 5_000)
  const asked = alice.events.find((e) => e.method === 'elicitation/create')!
  const unmatched = dropped(limited, 'answer-unmatched')
  // Mallory does not see alice's stream: she guesses IDs, as a sequential server ID would allow.
  const guesses = Array.from({ length: 32 }, (_, id) => ({ jsonrpc: '2.0', id, result: { action: 'accept', content: { name: 'mallory' } } }))
  t.equal((await post(caller(limited), guesses)).status, 202)
  t.equal(dropped(limited, 'answer-unmatched'), unmatched + 32, 'every guessed answer is dropped and counted')
  // Alice answers on another connection (hers is busy with the stream), as MCP clients do.
  t.equal((await post(caller(limited), { jsonrpc: '2.0', id: asked.id, result: { action: 'accept', content: { name: 'alice' } } })).status, 202)
  const { events } = await alice.done
  t.match(events.at(-1), { id: 'a1', result: { structuredContent: { name: 'alice' } } }, 'the tool got alice\'s answer')
})

t.test('with caller identities, cancels and answers are scoped by identity across connections', async (t) => {
  const who = (req: { headers: Record<string, string | string[] | undefined> }) => ({ token: 'test', clientId: String(req.headers['x-test-caller']), scopes: [] })
  const scoped = await agent('scoped', {}, { authenticate: who })
  const as = (name: string) => ({ 'x-test-caller': name })
  reopen()
  const before = { ...seen }
  const alice = post(caller(scoped), call('slow', 7), as('alice'))
  await waitFor('alice\'s call running', () => seen.ran === before.ran + 1, 5_000)
  await post(caller(scoped), cancel(7), as('mallory'))
  t.equal(seen.aborted, before.aborted, 'mallory cannot cancel it')
  await post(caller(scoped), cancel(7), as('alice'))
  await waitFor('alice cancels her own call from another connection', () => seen.aborted === before.aborted + 1, 5_000)
  t.equal((await alice).status, 202, 'her POST ends with no answer, as a cancelled request gets none')

  const asking = streamed(caller(scoped), call('ask', 'a2'), as('alice'))
  await waitFor('the elicitation request reaches alice', () => asking.events.some((e) => e.method === 'elicitation/create'), 5_000)
  const id = asking.events.find((e) => e.method === 'elicitation/create')!.id
  await post(caller(scoped), { jsonrpc: '2.0', id, result: { action: 'accept', content: { name: 'mallory' } } }, as('mallory'))
  t.equal(dropped(scoped, 'answer-foreign'), 1, 'mallory\'s answer, even with the right ID, is dropped')
  await post(caller(scoped), { jsonrpc: '2.0', id, result: { action: 'accept', content: { name: 'alice' } } }, as('alice'))
  const { events } = await asking.done
  t.match(events.at(-1), { id: 'a2', result: { structuredContent: { name: 'alice' } } })
})

t.test('slow clients are cut off by the header and request timeouts', async (t) => {
  const slow = await agent('slowloris', { http: { headersTimeoutMs: 500, requestTimeoutMs: 1_000 } })
  const body = JSON.stringify(call('echo', 1, { word: 'x' }))

  const trickle = await raw(slow)
  trickle.socket.write(postHead(slow, body.length))
  const drip = setInterval(() => { if (!trickle.socket.destroyed) trickle.socket.write(' ') }, 100)
  t.teardown(() => clearInterval(drip))
  t.ok(await within(trickle.closed, 8_000), 'a body that trickles in is cut at the request timeout')
  clearInterval(drip)
  t.match(trickle.received(), /^HTTP\/1\.1 408/)
  await waitFor('its slot is released', () => slow.inflight === 0, 5_000)

  const headers = await raw(slow)
  headers.socket.write('POST /mcp HTTP/1.1\r\n')
  const drip2 = setInterval(() => { if (!headers.socket.destroyed) headers.socket.write('X-Pad: 1\r\n') }, 100)
  t.teardown(() => clearInterval(drip2))
  t.ok(await within(headers.closed, 8_000), 'headers that trickle in are cut at the header timeout')
  clearInterval(drip2)
  t.match(headers.received(), /^HTTP\/1\.1 408/)

  const silent = await raw(slow)
  t.ok(await within(silent.closed, 8_000), 'a connection that sends nothing is closed')
  t.match(silent.received(), /^(HTTP\/1\.1 408 [^]*)?$/, 'and served nothing but a 408')

  // The request timeout covers receiving the request, not running the tool.
  reopen()
  const long = post(caller(slow), call('slow', 2))
  await waitFor('slow call in flight', () => slow.inflight === 1, 5_000)
  // A marker: a request whose body never comes is cut once the request timeout has passed.
  const marker = await raw(slow)
  marker.socket.write(postHead(slow, body.length))
  t.ok(await within(marker.closed, 8_000))
  t.match(marker.received(), /^HTTP\/1\.1 408/)
  release()
  t.equal((await long).status, 200, 'a call that runs longer than the request timeout is answered')
})

t.test('connections past http.maxConnections are closed before a byte is read', async (t) => {
  const capped = await agent('capped', { http: { maxConnections: 4, headersTimeoutMs: 60_000 } }) // held sockets stay open
  const held = await Promise.all([raw(capped), raw(capped), raw(capped), raw(capped)])
  for (const h of held) h.socket.write('POST /mcp HTTP/1.1\r\n') // half-open requests hold their connections
  const extra = await raw(capped)
  t.ok(await within(extra.closed, 5_000), 'a fifth connection is closed')
  t.equal(extra.received(), '', 'it was served nothing')
  await waitFor('the drop is counted', () => dropped(capped, 'connection-cap') === 1, 5_000)
  held[0].socket.destroy()
  await waitFor('a freed connection slot serves again', async () => await post(caller(capped), call('echo', 1, { word: 'ok' })).then((r) => r.status === 200, () => false), 5_000)
  for (const h of held) h.socket.destroy()
})

/** A tool that streams big log messages; it stops when aborted or after `total` bytes. */
function chatty (n: MeshNode, total: number, then: 'return' | 'wait', out: { written: number, aborted: boolean }): void {
  const chunk = 'x'.repeat(64 * 1024)
  n.tool('chatty', {}, async (_a, _d, ctx) => {
    while (out.written < total && !ctx.signal.aborted) {
      await ctx.log('info', chunk)
      out.written += chunk.length
    }
    if (then === 'wait') await aborted(ctx.signal)
    out.aborted = ctx.signal.aborted
    return 'spoke'
  })
}

/** Sends one tools/call on a raw socket and never reads the answer. */
async function neverReads (n: MeshNode, name: string): Promise<Socket> {
  const { socket } = await raw(n)
  socket.pause()
  const body = JSON.stringify(call(name, 1))
  socket.write(postHead(n, body.length) + body)
  return socket
}

t.test('a client that never reads its stream: the buffer stays bounded and the handler aborts', async (t) => {
  const out = { written: 0, aborted: false }
  const n = createMeshNode(testNodeOptions(MESH, 'unread', { http: { maxUnreadBytes: 64 * 1024 } }))
  chatty(n, 64 * 1024 * 1024, 'return', out)
  nodes.push(n)
  await n.start()
  const socket = await neverReads(n, 'chatty')
  await waitFor('the handler stops', () => out.aborted || out.written >= 64 * 1024 * 1024, 30_000)
  t.ok(out.aborted, 'the handler was aborted')
  t.ok(out.written < 16 * 1024 * 1024, `it wrote ${out.written} bytes before the cut: the socket buffers plus the bound, not 64 MiB`)
  t.equal(dropped(n, 'slow-reader'), 1)
  socket.destroy()
})

t.test('a client that stops reading is cut off after slowReaderTimeoutMs', async (t) => {
  const out = { written: 0, aborted: false }
  const n = createMeshNode(testNodeOptions(MESH, 'stalled', { http: { maxUnreadBytes: 1024 * 1024 * 1024, slowReaderTimeoutMs: 500 } }))
  chatty(n, 16 * 1024 * 1024, 'wait', out) // more than the socket buffers take: the write buffer fills
  nodes.push(n)
  await n.start()
  const socket = await neverReads(n, 'chatty')
  await waitFor('the handler aborted', () => out.aborted, 10_000)
  t.equal(dropped(n, 'slow-reader'), 1)
  socket.destroy()
})
