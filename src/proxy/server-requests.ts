/**
 * What a provider may send its caller while it serves a call, besides progress and parts: log
 * messages (`notifications/message`) and requests (`sampling/createMessage`, `elicitation/create`),
 * which the caller answers on a POST of its own. A provider is hostile until proven not, so its
 * requests are bounded: only while the call is in flight, a few at once.
 */
import { ErrorCode, LoggingMessageNotificationParamsSchema } from '@modelcontextprotocol/sdk/types.js'
import type { LoggingMessageNotification } from '@modelcontextprotocol/sdk/types.js'
import { MeshError } from '../errors.ts'
import { printable } from './answer.ts'

/** A log message a provider sent while serving a call (the params of MCP `notifications/message`). */
export type LogMessage = LoggingMessageNotification['params']

/**
 * Answers a request a provider sent while serving a call (`sampling/createMessage`,
 * `elicitation/create`): resolves with the JSON-RPC result. A thrown error with an integer
 * `code` (an `McpError`) goes back as that JSON-RPC error, any other as -32603. `signal` aborts
 * when the call ends or the provider cancels the request: nothing is sent back then.
 */
export type ServerRequestHandler = (method: string, params: Record<string, unknown> | undefined, signal: AbortSignal) => Promise<Record<string, unknown>>

/**
 * Requests of one call waiting for their answer at once (the handler running, or the answer on
 * its way). One more fails the call: each request costs the caller a handler and a POST, so a
 * provider must not be able to ask without bound.
 */
export const MAX_SERVER_REQUESTS = 8

type RequestId = string | number
/** A JSON-RPC error object as the caller sends it. */
interface RpcErrorOut { code: number, message: string, data?: unknown }

/** The log message in `params`, or undefined when it is not a well-formed one (dropped). */
export function logMessageOf (params: unknown): LogMessage | undefined {
  const parsed = LoggingMessageNotificationParamsSchema.safeParse(params)
  return parsed.success ? parsed.data : undefined
}

/**
 * The provider's requests during one call. Each is handed to the call's handler (no handler:
 * JSON-RPC -32601, so the provider's tool fails at once instead of waiting for an answer that
 * never comes; `ping` is answered here) and the answer goes back through `reply`. When the call
 * ends, handlers still running are aborted and their answers dropped.
 */
export class CallRequests {
  readonly #handler: ServerRequestHandler | undefined
  readonly #reply: (message: object, method: string) => Promise<void>
  readonly #fail: (err: MeshError) => void
  readonly #url: string
  readonly #pending = new Map<RequestId, AbortController>()
  #ended = false

  /**
   * `reply` sends one JSON-RPC response to the provider; `fail` ends the call with an error (too
   * many requests at once, or an answer that could not be delivered, which would leave the
   * provider's tool waiting).
   */
  constructor (init: { handler: ServerRequestHandler | undefined, reply: (message: object, method: string) => Promise<void>, fail: (err: MeshError) => void, url: string }) {
    this.#handler = init.handler
    this.#reply = init.reply
    this.#fail = init.fail
    this.#url = init.url
  }

  /** A request arrived on the call's stream. */
  request (id: unknown, method: string, params: unknown): void {
    if (this.#ended) return
    // Not an ID a response could name; a repeated ID is answered once.
    if ((typeof id !== 'string' && !Number.isInteger(id)) || this.#pending.has(id as RequestId)) return
    if (this.#pending.size >= MAX_SERVER_REQUESTS) {
      this.#fail(new MeshError('MESH_ERR_CALL_FAILED', `${this.#url} sent more than ${MAX_SERVER_REQUESTS} requests at once (sampling, elicitation) while serving the call`, {
        details: { url: this.#url, method: 'tools/call', malformed: 'too many server requests', maxServerRequests: MAX_SERVER_REQUESTS },
      }))
      return
    }
    const controller = new AbortController()
    this.#pending.set(id as RequestId, controller)
    void this.#answer(id as RequestId, method, params, controller.signal).finally(() => { this.#pending.delete(id as RequestId) })
  }

  /** The provider gave up on one of its requests (`notifications/cancelled`): its handler aborts, no answer goes back. */
  cancelled (params: unknown): void {
    const id = (params as { requestId?: unknown } | undefined)?.requestId
    if (typeof id === 'string' || typeof id === 'number') this.#pending.get(id)?.abort(new MeshError('MESH_ERR_ABORTED', 'the provider cancelled its request'))
  }

  /** The call ended (answered, failed or aborted): handlers still running abort; later requests are ignored. */
  end (): void {
    if (this.#ended) return
    this.#ended = true
    for (const c of this.#pending.values()) c.abort(new MeshError('MESH_ERR_ABORTED', 'the call the request belongs to has ended'))
  }

  async #answer (id: RequestId, method: string, params: unknown, signal: AbortSignal): Promise<void> {
    let message: object
    try {
      message = { jsonrpc: '2.0', id, result: await this.#run(method, params, signal) }
    } catch (err) {
      message = { jsonrpc: '2.0', id, error: rpcErrorOf(err) }
    }
    if (signal.aborted) return
    try {
      await this.#reply(message, method)
    } catch (err) {
      if (signal.aborted) return
      this.#fail(new MeshError('MESH_ERR_CALL_FAILED', `the answer to the provider's ${printable(method, 60)} could not be delivered to ${this.#url}: ${printable((err as Error).message)}`, {
        details: { url: this.#url, method, ...(err instanceof MeshError ? { cause: err.code } : {}) }, cause: err,
      }))
    }
  }

  async #run (method: string, params: unknown, signal: AbortSignal): Promise<Record<string, unknown>> {
    if (method === 'ping') return {}
    if (this.#handler === undefined) throw rpcError(ErrorCode.MethodNotFound, `this caller takes no ${printable(method, 60)} requests with this call (it passed no onRequest)`)
    const args = typeof params === 'object' && params !== null && !Array.isArray(params) ? params as Record<string, unknown> : undefined
    const result = await this.#handler(method, args, signal)
    if (typeof result !== 'object' || result === null || Array.isArray(result)) throw rpcError(ErrorCode.InternalError, `the caller's handler of ${printable(method, 60)} answered with something that is not a JSON object`)
    return result
  }
}

function rpcError (code: number, message: string): Error & RpcErrorOut {
  return Object.assign(new Error(message), { code })
}

/**
 * The JSON-RPC error for what a handler threw: its own code when it has an integer one (an
 * `McpError`, without the "MCP error <code>: " prefix the SDK adds to the message), else -32603.
 */
function rpcErrorOf (err: unknown): RpcErrorOut {
  const e = (typeof err === 'object' && err !== null ? err : {}) as { code?: unknown, message?: unknown, data?: unknown }
  const text = typeof e.message === 'string' ? e.message : String(err)
  if (!Number.isInteger(e.code)) return { code: ErrorCode.InternalError, message: printable(text, 500) }
  const code = e.code as number
  const prefix = `MCP error ${code}: `
  return { code, message: printable(text.startsWith(prefix) ? text.slice(prefix.length) : text, 500), ...(e.data === undefined ? {} : { data: e.data }) }
}
