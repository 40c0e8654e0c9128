import { randomUUID } from 'node:crypto'
import type { Transport, TransportSendOptions } from '@modelcontextprotocol/sdk/shared/transport.js'
import type { AuthInfo } from '@modelcontextprotocol/sdk/server/auth/types.js'
import type { RequestHandlerExtra } from '@modelcontextprotocol/sdk/shared/protocol.js'
import type { Server } from '@modelcontextprotocol/sdk/server/index.js'
import type { CallToolResult, JSONRPCMessage, RequestId, RequestInfo, ServerNotification, ServerRequest } from '@modelcontextprotocol/sdk/types.js'
import type { CallerKey } from './caller-key.ts'
import type { Exchange } from './exchange.ts'
import { PARTIAL_METHOD } from '../proxy/call-scope.ts'

/** The request context a tool handler gets, as the SDK shapes it. */
export type CallExtra = RequestHandlerExtra<ServerRequest, ServerNotification>

/**
 * The hot path: runs `tools/call` for a tool it knows, or returns undefined to leave the request
 * to the SDK's engine. It must apply the SDK's rules (validation, errors as `isError` results).
 */
export type FastCall = (name: string, args: unknown, extra: CallExtra) => Promise<CallToolResult> | undefined

/** What the transport knows of the POST a message came in. */
export interface DispatchInfo {
  requestInfo: RequestInfo
  authInfo?: AuthInfo
  /** Who sent it: cancellations and answers are scoped by it. */
  caller: CallerKey
}

/** Why a message was dropped: a cancel or an answer that does not belong to its sender. */
export type TransportDrop = 'cancel-unmatched' | 'answer-unmatched' | 'answer-foreign'

interface Pending {
  exchange: Exchange
  clientId: RequestId
  caller: CallerKey
  /** Its key in the (caller, client request ID) index. */
  key: string
  /** Aborts it when it runs on the fast path (the SDK keeps its own controllers for the rest). */
  fast?: AbortController
  /** Wire IDs of the requests the server sent its caller while serving it. */
  asked?: string[]
}

/** A request the server sent a caller (sampling, elicitation), waiting for that caller's answer. */
interface Asked { sdkId: number, caller: CallerKey }

/**
 * A lean server-side MCP transport: the SDK's protocol engine (one `McpServer`) runs on top, and
 * HTTP parsing stays ours. Request IDs from many clients are remapped to internal IDs, so one
 * server instance serves every connection without ID clashes and without a server per request.
 *
 * Callers stay in their lane: a `notifications/cancelled` reaches only a request of the caller
 * that sent it (looked up by caller and request ID), and the server's own requests go out under
 * random IDs, so only the caller whose stream carried one can answer it (and, with identities,
 * only that identity). Anything else is dropped and counted.
 */
export class ExchangeTransport implements Transport {
  onclose?: () => void
  onerror?: (error: Error) => void
  onmessage?: Transport['onmessage']
  #nextId = 1
  readonly #pending = new Map<number, Pending>()
  /** Internal ID by (caller, client request ID): what a cancellation names. */
  readonly #index = new Map<string, number>()
  /** The server's requests to callers by wire ID, and the wire ID by the SDK's own ID. */
  readonly #asked = new Map<string, Asked>()
  readonly #wireIdOf = new Map<number, string>()
  #closed = false
  readonly #idle = new Set<() => void>()
  readonly #server: Server | undefined
  readonly #fastCall: FastCall | undefined
  readonly #onDrop: (reason: TransportDrop) => void

  /**
   * `fastCall` and `server` enable the fast path for `tools/call`: the SDK's profile showed about
   * 40 µs of CPU per call in its generic dispatch (schema guards that fail on every request,
   * request and result re-parsing, promise chains). Notifications and requests back to the
   * caller still go through the SDK's `server`, tied to the call.
   */
  constructor (init: { fast?: { server: Server, fastCall: FastCall }, onDrop?: (reason: TransportDrop) => void } = {}) {
    this.#server = init.fast?.server
    this.#fastCall = init.fast?.fastCall
    this.#onDrop = init.onDrop ?? (() => {})
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

  /**
   * Hands the messages of one POST to the protocol engine; answers arrive through `send` (some
   * synchronously, such as "method not found"). Returns how many requests the POST carried.
   */
  dispatch (messages: JSONRPCMessage[], exchange: Exchange, info: DispatchInfo): number {
    let requests = 0
    for (const m of messages) {
      if ('method' in m) {
        if ('id' in m) {
          requests++
          this.#request(m, exchange, info)
        } else if (m.method === 'notifications/cancelled') {
          const requestId = (m.params as { requestId?: RequestId } | undefined)?.requestId
          const id = requestId === undefined ? undefined : this.#index.get(indexKey(info.caller, requestId))
          if (id === undefined) this.#onDrop('cancel-unmatched')
          else this.#cancel(id, String((m.params as { reason?: unknown }).reason ?? 'cancelled by the client'))
        } else {
          this.onmessage?.(m, info)
        }
      } else {
        this.#answerFromCaller(m, info)
      }
    }
    return requests
  }

  #request (m: JSONRPCMessage & { id: RequestId, method: string, params?: unknown }, exchange: Exchange, info: DispatchInfo): void {
    const id = this.#nextId++
    const key = indexKey(info.caller, m.id)
    const p: Pending = { exchange, clientId: m.id, caller: info.caller, key }
    this.#pending.set(id, p)
    this.#index.set(key, id) // a reused client ID names its newest request
    exchange.waiting.add(id)
    if (m.method !== 'tools/call' || !this.#runFast(id, p, m.params, info)) this.onmessage?.({ ...m, id }, info)
  }

  /** A caller's answer to one of the server's requests: only the caller it was sent to may give it. */
  #answerFromCaller (m: JSONRPCMessage, info: DispatchInfo): void {
    const wireId = (m as { id?: unknown }).id
    const asked = typeof wireId === 'string' ? this.#asked.get(wireId) : undefined
    if (asked === undefined) { this.#onDrop('answer-unmatched'); return }
    // Without identities the random wire ID is the proof: only the caller's own stream carried it.
    if (asked.caller.kind === 'identity' && asked.caller.id !== info.caller.id) { this.#onDrop('answer-foreign'); return }
    this.#forgetAsked(wireId as string)
    this.onmessage?.({ ...m, id: asked.sdkId } as JSONRPCMessage, info)
  }

  /** Runs a `tools/call` on the fast path; false when the tool is left to the SDK. */
  #runFast (id: number, pending: Pending, params: unknown, info: DispatchInfo): boolean {
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
    pending.fast = controller
    running.then(
      (result) => { this.#answer(id, { jsonrpc: '2.0', id, result }) },
      (err: Error) => { this.#answer(id, { jsonrpc: '2.0', id, error: { code: -32603, message: err.message ?? 'Internal error' } }) },
    ).catch((err: Error) => this.onerror?.(err))
    return true
  }

  /** Stops one request: its handler's signal aborts and it gets no answer (as in the SDK). */
  #cancel (id: number, reason: string): void {
    const p = this.#pending.get(id)
    if (p === undefined) return
    this.#stop(id, p, reason)
    this.#complete(id, p)
    if (p.exchange.waiting.size === 0 && !p.exchange.done) p.exchange.finish()
    this.#settled()
  }

  /** The client went away: cancel what it was waiting for, so handlers see their signal abort. */
  abandon (exchange: Exchange): void {
    exchange.done = true
    for (const id of exchange.waiting) {
      const p = this.#pending.get(id)
      if (p === undefined) continue
      this.#stop(id, p, 'client disconnected')
      this.#complete(id, p)
    }
    exchange.waiting.clear()
    this.#settled()
  }

  #stop (id: number, p: Pending, reason: string): void {
    if (p.fast !== undefined) p.fast.abort(reason)
    else this.onmessage?.({ jsonrpc: '2.0', method: 'notifications/cancelled', params: { requestId: id, reason } })
  }

  /** Forgets a request that is answered, cancelled or abandoned, and the server's requests for it. */
  #complete (id: number, p: Pending): void {
    this.#pending.delete(id)
    if (this.#index.get(p.key) === id) this.#index.delete(p.key)
    p.exchange.waiting.delete(id)
    if (p.asked !== undefined) for (const wireId of p.asked) this.#forgetAsked(wireId)
  }

  #forgetAsked (wireId: string): void {
    const asked = this.#asked.get(wireId)
    if (asked === undefined) return
    this.#asked.delete(wireId)
    this.#wireIdOf.delete(asked.sdkId)
  }

  #settled (): void {
    if (this.#pending.size > 0) return
    for (const resolve of this.#idle) resolve()
    this.#idle.clear()
  }

  #answer (id: number, message: JSONRPCMessage): void {
    const p = this.#pending.get(id)
    if (p === undefined) return // abandoned or cancelled
    this.#complete(id, p)
    p.exchange.answer({ ...message, id: p.clientId } as JSONRPCMessage)
    this.#settled()
  }

  async send (message: JSONRPCMessage, options?: TransportSendOptions): Promise<void> {
    if (!('method' in message)) {
      if ('id' in message) this.#answer(message.id as number, message)
      return
    }
    // A notification or a server-to-client request tied to a request: stream it on that POST.
    const related = options?.relatedRequestId
    const p = typeof related === 'number' ? this.#pending.get(related) : undefined
    if (p === undefined || p.exchange.done) {
      // No GET stream: unrelated messages are not deliverable. A request fails at once rather
      // than wait out the SDK's timeout; a notification is dropped.
      if ('id' in message) throw new Error(`the caller of request ${String(related)} is gone: ${message.method} cannot reach it`)
      return
    }
    let out: JSONRPCMessage = message
    if ('id' in message) {
      // The server's own request: under a random ID, which only this caller's stream carries.
      const wireId = randomUUID()
      const sdkId = message.id as number
      this.#asked.set(wireId, { sdkId, caller: p.caller })
      this.#wireIdOf.set(sdkId, wireId)
      ;(p.asked ??= []).push(wireId)
      out = { ...message, id: wireId }
    } else if (message.method === 'notifications/cancelled') {
      // The SDK gave up on its own request (timeout, abort): name it as the caller knows it.
      const params = message.params as { requestId?: RequestId }
      const wireId = typeof params.requestId === 'number' ? this.#wireIdOf.get(params.requestId) : undefined
      if (wireId !== undefined) {
        this.#forgetAsked(wireId)
        out = { ...message, params: { ...params, requestId: wireId } } as JSONRPCMessage
      }
    }
    p.exchange.stream(out)
    // Partial results wait for the caller to read (their producer can be far faster than it);
    // progress and logs do not, bounded by the exchange's unread limit as before.
    if (message.method === PARTIAL_METHOD) await p.exchange.writable()
  }

  async close (): Promise<void> {
    if (this.#closed) return
    this.#closed = true
    this.#pending.clear()
    this.#index.clear()
    this.#asked.clear()
    this.#wireIdOf.clear()
    this.#settled()
    this.onclose?.()
  }
}

/** The cancellation index key: a caller and its request ID (a number and a string never match). */
function indexKey (caller: CallerKey, clientId: RequestId): string {
  return `${caller.id}\n${typeof clientId === 'number' ? '#' : '$'}${clientId}`
}
