/**
 * What the client makes of a provider's answer, apart from how it was read off the socket: every
 * malformed answer becomes a typed `MESH_ERR_CALL_FAILED`, and no foreign text reaches an error
 * message except a well-formed JSON-RPC error's message, bounded and stripped of control
 * characters. A provider is whatever its advert names, so its answers are hostile until proven not.
 */
import { CallToolResultSchema, InitializeResultSchema, SUPPORTED_PROTOCOL_VERSIONS } from '@modelcontextprotocol/sdk/types.js'
import type { CallToolResult } from '@modelcontextprotocol/sdk/types.js'
import { MeshError } from '../errors.ts'
import type { ErrorCode } from '../errors.ts'

/** Which request an answer belongs to, for error messages and details. */
export interface Asked {
  /** The provider's URL, normalized (`URL.href`: no control characters). */
  url: string
  method: string
}

/** A JSON-RPC error object as a provider sent it. */
export interface RpcError { code: number, message: string, data?: unknown }

/** One JSON-RPC message from a provider, as far as a call cares. */
export type RpcMessage =
  | { kind: 'result', result: unknown }
  | { kind: 'error', error: RpcError }
  /** A notification, a request to the client (with its `id`), or a response to another request. */
  | { kind: 'other', method?: string, params?: unknown, id?: unknown }

/** JSON-RPC "invalid params": what MCP servers answer to arguments that fail the input schema. */
const INVALID_PARAMS = -32602
/** Codes a mesh endpoint puts in `error.data.code` of an HTTP error that ran nothing. */
const SERVER_CODES: ReadonlySet<string> = new Set(['MESH_ERR_SERVER_BUSY', 'MESH_ERR_SERVER_DRAINING', 'MESH_ERR_SERVER_BODY_TOO_LARGE'])

/** `text` made safe to print: control and bidi characters become spaces, at most `max` characters. */
export function printable (text: string, max = 200): string {
  // eslint-disable-next-line no-control-regex
  const clean = text.replace(/[\u0000-\u001f\u007f-\u009f\u200b-\u200f\u2028-\u202e\u2066-\u2069\ufeff]/g, ' ').trim()
  const chars = [...clean.slice(0, max * 2)]
  return chars.length > max ? `${chars.slice(0, max).join('')}…` : clean
}

/** The error for an answer that is not MCP: says what came back, never echoes it. */
export function notMcp (asked: Asked, what: string): MeshError {
  return new MeshError('MESH_ERR_CALL_FAILED', `${asked.url} answered ${asked.method} with ${what}: it does not speak MCP (check the endpoint in its advert: meshctl status)`, {
    details: { url: asked.url, method: asked.method, malformed: what },
  })
}

/**
 * Reads one JSON-RPC message sent in answer to request `id`. Responses to other IDs,
 * notifications and requests come back as `other`; anything that is not JSON-RPC throws.
 */
export function readMessage (text: string, id: number, asked: Asked): RpcMessage {
  let m: unknown
  try {
    m = JSON.parse(text)
  } catch {
    throw notMcp(asked, 'a body that is not JSON')
  }
  if (!isObject(m) || m.jsonrpc !== '2.0') throw notMcp(asked, 'JSON that is not a JSON-RPC message')
  if (typeof m.method === 'string') return { kind: 'other', method: m.method, params: m.params, id: m.id }
  if (m.id !== id) return { kind: 'other' }
  if ('result' in m && !('error' in m)) return { kind: 'result', result: m.result }
  const error = 'result' in m ? undefined : asRpcError(m.error)
  if (error !== undefined) return { kind: 'error', error }
  throw notMcp(asked, 'a JSON-RPC response that has neither a result nor a well-formed error')
}

/** The mesh error for a JSON-RPC error answer: invalid params on `tools/call` is the caller's fault. */
export function rpcFailure (asked: Asked, error: RpcError): MeshError {
  const message = printable(error.message)
  const rpcError = { code: error.code, message }
  if (error.code === INVALID_PARAMS && asked.method === 'tools/call') {
    return new MeshError('MESH_ERR_CALL_INVALID_ARGS', `${asked.url} refused the arguments (JSON-RPC error ${error.code}): ${message}`, {
      details: { url: asked.url, method: asked.method, rpcError, validation: message },
    })
  }
  return new MeshError('MESH_ERR_CALL_FAILED', `${asked.url} answered ${asked.method} with JSON-RPC error ${error.code}: ${message}`, {
    details: { url: asked.url, method: asked.method, rpcError },
  })
}

/**
 * The mesh error for an HTTP status other than 200 and 202. `body` is read only for a
 * well-formed JSON-RPC error (its message, and the mesh code of a 503 or 413). 503 ran nothing
 * (busy, draining), so another provider may take the call. Redirects are never followed.
 */
export function httpFailure (asked: Asked, status: number, body: string): MeshError {
  let error: RpcError | undefined
  try {
    const m = JSON.parse(body) as unknown
    if (isObject(m) && m.jsonrpc === '2.0') error = asRpcError(m.error)
  } catch {}
  const data = error?.data
  const meshCode = isObject(data) && typeof data.code === 'string' && SERVER_CODES.has(data.code) ? data.code as ErrorCode : 'MESH_ERR_CALL_FAILED'
  const why = error === undefined ? '' : `: ${printable(error.message)}`
  const redirect = status >= 300 && status < 400 ? ' (redirects are not followed)' : ''
  return new MeshError(meshCode, `${asked.url} answered ${asked.method} with HTTP ${status}${redirect}${why}`, {
    details: { url: asked.url, method: asked.method, status, notSent: status === 503 },
  })
}

/** The protocol version an `initialize` result negotiated; throws when it is not one. */
export function initializeVersion (asked: Asked, result: unknown): string {
  const parsed = InitializeResultSchema.safeParse(result)
  if (!parsed.success) throw notMcp(asked, 'a result that is not an MCP initialize result')
  const version = parsed.data.protocolVersion
  if (!SUPPORTED_PROTOCOL_VERSIONS.includes(version)) {
    throw new MeshError('MESH_ERR_CALL_FAILED', `${asked.url} negotiated an MCP version this client does not support (it supports ${SUPPORTED_PROTOCOL_VERSIONS.join(', ')})`, {
      details: { url: asked.url, method: asked.method, malformed: 'unsupported protocol version' },
    })
  }
  return version
}

/** A `tools/call` result, checked against the SDK's schema. */
export function toolResult (asked: Asked, result: unknown): CallToolResult {
  const parsed = CallToolResultSchema.safeParse(result)
  if (!parsed.success) {
    throw new MeshError('MESH_ERR_CALL_FAILED', `${asked.url} answered ${asked.method} with a result that is not an MCP tool result`, {
      details: { url: asked.url, method: asked.method, malformed: 'tool result', issues: parsed.error.issues.slice(0, 8).map((i) => ({ path: i.path, code: i.code })) },
    })
  }
  return parsed.data
}

/** A well-formed JSON-RPC error object (integer code, string message), or undefined. */
function asRpcError (e: unknown): RpcError | undefined {
  if (!isObject(e) || !Number.isInteger(e.code) || typeof e.message !== 'string') return undefined
  return { code: e.code as number, message: e.message, ...('data' in e ? { data: e.data } : {}) }
}

function isObject (v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v)
}
