import type { ServerResponse } from 'node:http'
import type { Transport, TransportSendOptions } from '@modelcontextprotocol/sdk/shared/transport.js'
import type { AuthInfo } from '@modelcontextprotocol/sdk/server/auth/types.js'
import type { RequestHandlerExtra } from '@modelcontextprotocol/sdk/shared/protocol.js'
import type { Server } from '@modelcontextprotocol/sdk/server/index.js'
import type { CallToolResult, JSONRPCMessage, RequestId, RequestInfo, ServerNotification, ServerRequest } from '@modelcontextprotocol/sdk/types.js'

/** The request context a tool handler gets, as the SDK shapes it. */
export type CallExtra = RequestHandlerExtra<ServerRequest, ServerNotification>

/**
 * The hot path: runs `tools/call` for a tool it knows, or returns undefined to leave the request
 * to the SDK's engine. It must apply the SDK's rules (validation, errors as `isError` results).
 */
export type FastCall = (name: string, args: unknown, extra: CallExtra) => Promise<CallToolResult> | undefined

/**
 * One HTTP POST in flight: the requests it carried and the response they are answered on.
 * Answers go out as one JSON body when they are all ready, unless something related to one of
 * them (a progress notification, a server-to-client request) must be sent first: then the
 * response switches to an SSE stream, as Streamable HTTP allows.
 */
export interface Exchange {
  readonly res: ServerResponse
  /** Internal request IDs still waiting for an answer. */
  readonly waiting: Set<number>
  /** Answers in request order (batches keep their order). */
  readonly answers: JSONRPCMessage[]
  batch: boolean
  sse: boolean
  done: boolean
}

interface Pending { exchange: Exchange, clientId: RequestId }

/**
 * A lean server-side MCP transport: the SDK's protocol engine (one `McpServer`) runs on top, and
 * HTTP parsing stays ours. Request IDs from many clients are remapped to internal IDs, so one
 * server instance serves every connection without ID clashes and without a server per request.
 */
export class ExchangeTransport implements Transport {
  onclose?: () => void
  onerror?: (error: Error) => void
  onmessage?: Transport['onmessage']
  #nextId = 1
  #pending = new Map<number, Pending>()
  #closed = false
  #idle = new Set<() => void>()
  /** Abort controllers of calls on the fast path (the SDK keeps its own for the rest). */
  #fast = new Map<number, AbortController>()
  readonly #server: Server | undefined
  readonly #fastCall: FastCall | undefined

  /**
   * `fastCall` and `server` enable the fast path for `tools/call`: the SDK's profile showed about
   * 40 µs of CPU per call in its generic dispatch (schema guards that fail on every request,
   * request and result re-parsing, promise chains). Notifications and requests back to the
   * caller still go through the SDK's `server`, tied to the call.
   */
  constructor (fast?: { server: Server, fastCall: FastCall }) {
    this.#server = fast?.server
    this.#fastCall = fast?.fastCall
  }

  async start (): Promise<void> {}

  /** Requests waiting for an answer right now. */
  get inflight (): number {
    return this.#pending.size
  }

  /** Resolves when no request is waiting for an answer. */
  idle (): Promise<void> {
    if (this.#pending.size === 0) return Promise.resolve()
    return new Promise((resolve) => this.#idle.add(resolve))
  }

  #settled (): void {
    if (this.#pending.size > 0) return
    for (const resolve of this.#idle) resolve()
    this.#idle.clear()
  }

  /**
   * Hands the messages of one POST to the protocol engine; answers arrive through `send` (some
   * synchronously, such as "method not found"). Returns how many requests the POST carried.
   */
  dispatch (messages: JSONRPCMessage[], exchange: Exchange, info: { requestInfo: RequestInfo, authInfo?: AuthInfo }): number {
    let requests = 0
    for (const m of messages) {
      if ('method' in m && 'id' in m) {
        requests++
        const id = this.#nextId++
        this.#pending.set(id, { exchange, clientId: m.id })
        exchange.waiting.add(id)
        if (m.method !== 'tools/call' || !this.#runFast(id, m.params, info)) this.onmessage?.({ ...m, id }, info)
      } else if ('method' in m && m.method === 'notifications/cancelled') {
        const internal = this.#internalIdOf((m.params as { requestId?: RequestId } | undefined)?.requestId)
        const fast = internal === undefined ? undefined : this.#fast.get(internal)
        if (fast !== undefined) this.#cancelFast(internal!, fast, 'cancelled by the client')
        else if (internal !== undefined) this.onmessage?.({ ...m, params: { ...m.params, requestId: internal } }, info)
      } else {
        // Notifications and responses to our own requests (elicitation, sampling) use server IDs.
        this.onmessage?.(m, info)
      }
    }
    return requests
  }

  /** Runs a `tools/call` on the fast path; false when the tool is left to the SDK. */
  #runFast (id: number, params: unknown, info: { requestInfo: RequestInfo, authInfo?: AuthInfo }): boolean {
    const server = this.#server
    if (this.#fastCall === undefined || server === undefined) return false
    const p = params as { name?: unknown, arguments?: unknown, _meta?: CallExtra['_meta'] } | undefined
    if (typeof p?.name !== 'string') return false
    const controller = new AbortController()
    const extra: CallExtra = {
      signal: controller.signal,
      requestId: id,
      ...(p._meta === undefined ? {} : { _meta: p._meta }),
      ...(info.authInfo === undefined ? {} : { authInfo: info.authInfo }),
      requestInfo: info.requestInfo,
      sendNotification: async (n) => {
        if (!controller.signal.aborted) await server.notification(n, { relatedRequestId: id })
      },
      sendRequest: async (r, schema, options) => await server.request(r, schema, { ...options, relatedRequestId: id }),
    } as CallExtra
    const running = this.#fastCall(p.name, p.arguments, extra)
    if (running === undefined) return false
    this.#fast.set(id, controller)
    running.then(
      (result) => this.send({ jsonrpc: '2.0', id, result }),
      (err: Error) => this.send({ jsonrpc: '2.0', id, error: { code: -32603, message: err.message ?? 'Internal error' } }),
    ).catch((err: Error) => this.onerror?.(err)).finally(() => this.#fast.delete(id))
    return true
  }

  #cancelFast (id: number, controller: AbortController, reason: string): void {
    controller.abort(reason)
    this.#fast.delete(id)
    const p = this.#pending.get(id)
    if (p !== undefined) {
      // A cancelled request gets no answer (as in the SDK); the POST ends without one.
      this.#pending.delete(id)
      p.exchange.waiting.delete(id)
      if (p.exchange.waiting.size === 0 && !p.exchange.done) finish(p.exchange)
      this.#settled()
    }
  }

  /** The client went away: cancel what it was waiting for, so handlers see their signal abort. */
  abandon (exchange: Exchange): void {
    for (const id of exchange.waiting) {
      const fast = this.#fast.get(id)
      if (fast !== undefined) {
        fast.abort('client disconnected')
        this.#fast.delete(id)
      } else {
        this.onmessage?.({ jsonrpc: '2.0', method: 'notifications/cancelled', params: { requestId: id, reason: 'client disconnected' } })
      }
      this.#pending.delete(id)
    }
    exchange.waiting.clear()
    exchange.done = true
    this.#settled()
  }

  async send (message: JSONRPCMessage, options?: TransportSendOptions): Promise<void> {
    if ('id' in message && !('method' in message)) {
      const id = message.id as number
      const p = this.#pending.get(id)
      if (p === undefined) return // abandoned or cancelled
      this.#pending.delete(id)
      p.exchange.waiting.delete(id)
      const answer = { ...message, id: p.clientId } as JSONRPCMessage
      if (p.exchange.sse) writeEvent(p.exchange.res, answer)
      else p.exchange.answers.push(answer)
      if (p.exchange.waiting.size === 0) finish(p.exchange)
      this.#settled()
      return
    }
    // A notification or a server-to-client request tied to a request: stream it on that POST.
    const related = options?.relatedRequestId
    const p = typeof related === 'number' ? this.#pending.get(related) : undefined
    if (p === undefined || p.exchange.done) return // no GET stream: unrelated messages are not deliverable
    if (!p.exchange.sse) startSse(p.exchange)
    writeEvent(p.exchange.res, message)
  }

  async close (): Promise<void> {
    if (this.#closed) return
    this.#closed = true
    this.#pending.clear()
    this.#settled()
    this.onclose?.()
  }

  #internalIdOf (clientId: RequestId | undefined): number | undefined {
    if (clientId === undefined) return undefined
    let found: number | undefined
    for (const [id, p] of this.#pending) {
      if (p.clientId !== clientId) continue
      if (found !== undefined) return undefined // ambiguous across clients: leave it alone
      found = id
    }
    return found
  }
}

function startSse (exchange: Exchange): void {
  exchange.sse = true
  exchange.res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache' })
  for (const a of exchange.answers) writeEvent(exchange.res, a)
  exchange.answers.length = 0
}

function writeEvent (res: ServerResponse, message: JSONRPCMessage): void {
  res.write(`event: message\ndata: ${JSON.stringify(message)}\n\n`)
}

function finish (exchange: Exchange): void {
  exchange.done = true
  if (exchange.sse) {
    exchange.res.end()
    return
  }
  if (exchange.answers.length === 0) {
    exchange.res.writeHead(202).end() // every request of the POST was cancelled
    return
  }
  const body = JSON.stringify(exchange.batch ? exchange.answers : exchange.answers[0])
  exchange.res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) })
  exchange.res.end(body)
}
