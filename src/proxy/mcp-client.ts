import { Pool } from 'undici'
import type { Dispatcher, buildConnector } from 'undici'
import { LATEST_PROTOCOL_VERSION } from '@modelcontextprotocol/sdk/types.js'
import type { CallToolResult } from '@modelcontextprotocol/sdk/types.js'
import { MeshError } from '../errors.ts'
import { SseParser } from './sse.ts'
import { httpFailure, initializeVersion, notMcp, printable, readMessage, rpcFailure, toolResult } from './answer.ts'
import type { RpcMessage } from './answer.ts'

/** Progress a provider reported for a call (MCP `notifications/progress`). */
export interface Progress { progress: number, total?: number, message?: string }

/** Per-call options of the lean client. */
export interface RawCallOptions {
  signal?: AbortSignal
  /** A timeout of its own (callers that pass a signal with a deadline need none). */
  timeoutMs?: number
  /** Extra headers (propagated headers, trace context). */
  headers?: Record<string, string>
  onProgress?: (p: Progress) => void
}

/** How the client connects; `connect` is the TLS seam (undici connector options or a connector). */
export interface McpHttpClientInit {
  clientName: string
  clientVersion?: string
  /** Keep-alive connections per provider. */
  connections?: number
  /** Largest answer read from a provider (default 10 MiB, as MCP Mesh's maxResponseSize). */
  maxResponseBytes?: number
  connect?: Partial<buildConnector.BuildOptions> | buildConnector.connector
}

interface Provider { pool: Pool, version?: Promise<string> }
/** A provider URL once checked: its pool's key, the path it POSTs to, the normalized form for messages. */
interface Target { origin: string, path: string, href: string }
const NO_SIGNALS: AbortSignal[] = []
/** A signal that never aborts, for calls with neither a signal nor a timeout. */
const NEVER = new AbortController().signal

const ACCEPT = 'application/json, text/event-stream'
/**
 * undici connect errors, and a pool closed by `forget()` (its member left) before the request was
 * dispatched: the request never left this process, so another provider may take it.
 */
const NOT_SENT = new Set(['ECONNREFUSED', 'ECONNRESET', 'EHOSTUNREACH', 'ENETUNREACH', 'ENOTFOUND', 'EAI_AGAIN', 'UND_ERR_CONNECT_TIMEOUT', 'UND_ERR_CLOSED'])
/** Most of an HTTP error body read (for a JSON-RPC error's message); the rest is dropped. */
const MAX_ERROR_BODY = 64 * 1024

/**
 * A lean MCP Streamable HTTP client: one keep-alive pool per provider, one `initialize` per
 * provider (the negotiated version is cached), then `tools/call` as a single POST each.
 * Every answer is checked (JSON-RPC shape, the SDK's initialize and `CallToolResult` schemas);
 * a malformed one is `MESH_ERR_CALL_FAILED`, and no foreign text reaches an error message but a
 * well-formed JSON-RPC error's message (see `answer.ts`). Redirects are never followed.
 */
export class McpHttpClient {
  readonly #init: McpHttpClientInit
  readonly #providers = new Map<string, Provider>()
  /** Checked URLs: parsing one costs more than the rest of the lookup. */
  readonly #byUrl = new Map<string, Target>()
  #nextId = 1
  #closed = false

  constructor (init: McpHttpClientInit) {
    this.#init = init
  }

  /** Open keep-alive pools, one per provider origin called and not forgotten since. */
  get size (): number {
    return this.#providers.size
  }

  /**
   * Calls `tool` on the MCP endpoint at `url`; throws MeshError `MESH_ERR_CALL_*` codes. A `url`
   * that is not an http(s) URL without credentials is `MESH_ERR_CALL_UNREACHABLE` with
   * `details.notSent` (nothing was sent).
   */
  async callTool (url: string, tool: string, args: unknown, options: RawCallOptions): Promise<CallToolResult> {
    const signals = options.timeoutMs === undefined ? NO_SIGNALS : [AbortSignal.timeout(options.timeoutMs)]
    const signal = options.signal === undefined
      ? (signals[0] ?? NEVER)
      : signals.length === 0 ? options.signal : AbortSignal.any([options.signal, ...signals])
    const target = this.#target(url)
    const p = this.#provider(target)
    const version = await (p.version ??= this.#initialize(target, p, signal).catch((err: unknown) => {
      p.version = undefined
      throw err
    }))
    const params: Record<string, unknown> = { name: tool, arguments: args ?? {} }
    if (options.onProgress !== undefined) params._meta = { progressToken: this.#nextId }
    const result = await this.#post(target, p, 'tools/call', params, signal, { ...options.headers, 'mcp-protocol-version': version }, options.onProgress)
    return toolResult({ url: target.href, method: 'tools/call' }, result)
  }

  /** Closes every pool. */
  async close (): Promise<void> {
    this.#closed = true
    const pools = [...this.#providers.values()].map((p) => p.pool.destroy())
    this.#providers.clear()
    this.#byUrl.clear()
    await Promise.allSettled(pools)
  }

  /**
   * Forgets the pool of `url`'s origin (its provider went away or moved): calls in flight on it
   * finish, then its connections close. A later call to that origin opens a new pool.
   */
  forget (url: string): void {
    const origin = originOf(url)
    const p = origin === undefined ? undefined : this.#providers.get(origin)
    if (p === undefined) return
    this.#providers.delete(origin!)
    for (const [u, t] of this.#byUrl) if (t.origin === origin) this.#byUrl.delete(u)
    p.pool.close().catch(() => {})
  }

  #target (url: string): Target {
    if (this.#closed) throw new MeshError('MESH_ERR_NOT_STARTED', 'the MCP client is closed (its node has stopped)')
    let t = this.#byUrl.get(url)
    if (t === undefined) {
      t = checkUrl(url)
      if (this.#byUrl.size > 10_000) this.#byUrl.clear()
      this.#byUrl.set(url, t)
    }
    return t
  }

  #provider (t: Target): Provider {
    let p = this.#providers.get(t.origin)
    if (p === undefined) {
      const pool = new Pool(t.origin, {
        connections: this.#init.connections ?? 16,
        keepAliveTimeout: 30_000,
        ...(this.#init.connect === undefined ? {} : { connect: this.#init.connect }),
      })
      p = { pool }
      this.#providers.set(t.origin, p)
    }
    return p
  }

  async #initialize (t: Target, p: Provider, signal: AbortSignal): Promise<string> {
    const result = await this.#post(t, p, 'initialize', {
      protocolVersion: LATEST_PROTOCOL_VERSION,
      capabilities: {},
      clientInfo: { name: this.#init.clientName, version: this.#init.clientVersion ?? '0.0.0' },
    }, signal, {})
    const version = initializeVersion({ url: t.href, method: 'initialize' }, result)
    const res = await this.#send(t, p, 'notifications/initialized', { jsonrpc: '2.0', method: 'notifications/initialized' }, signal, { 'mcp-protocol-version': version })
    // Nothing is expected back (202); reading what came keeps the connection reusable.
    await res.body.dump({ limit: MAX_ERROR_BODY }).catch(() => {})
    return version
  }

  /** Sends one request and returns its `result`, reading a JSON or an SSE answer. */
  async #post (t: Target, p: Provider, method: string, params: unknown, signal: AbortSignal, headers: Record<string, string>, onProgress?: (p: Progress) => void): Promise<unknown> {
    const id = this.#nextId++
    const asked = { url: t.href, method }
    const res = await this.#send(t, p, method, { jsonrpc: '2.0', id, method, params }, signal, headers)
    const type = String(res.headers['content-type'] ?? '').toLowerCase()
    const max = this.#init.maxResponseBytes ?? DEFAULT_MAX_RESPONSE
    let answer: Exclude<RpcMessage, { kind: 'other' }> | undefined
    try {
      if (type.startsWith('text/event-stream')) {
        const sse = new SseParser()
        let size = 0
        res.body.setEncoding('utf8')
        for await (const chunk of res.body) {
          size += (chunk as string).length
          if (size > max) { discard(res); throw tooLarge(t.href, max) }
          for (const data of sse.push(chunk as string)) {
            const m = readMessage(data, id, asked)
            if (m.kind !== 'other') answer = m
            else if (m.method === 'notifications/progress' && onProgress !== undefined) progressOf(m.params, onProgress)
          }
          if (answer !== undefined) break
        }
        discard(res)
      } else if (type.startsWith('application/json')) {
        const m = readMessage(await readCapped(res, max, t.href), id, asked)
        if (m.kind === 'other') throw notMcp(asked, 'a JSON-RPC message that is not the response to the request')
        answer = m
      } else {
        discard(res)
        throw notMcp(asked, 'a body that is neither JSON nor an event stream')
      }
    } catch (err) {
      discard(res)
      throw callError(err, t.href, signal)
    }
    if (answer === undefined) throw new MeshError('MESH_ERR_CALL_FAILED', `${t.href} closed the stream without answering ${method}`, { details: { url: t.href, method } })
    if (answer.kind === 'error') throw rpcFailure(asked, answer.error)
    return answer.result
  }

  async #send (t: Target, p: Provider, method: string, message: unknown, signal: AbortSignal, headers: Record<string, string>): Promise<Dispatcher.ResponseData> {
    const body = JSON.stringify(message)
    let res: Dispatcher.ResponseData
    try {
      res = await p.pool.request({
        path: t.path,
        method: 'POST',
        headers: { ...headers, 'content-type': 'application/json', accept: ACCEPT },
        body,
        signal,
      })
    } catch (err) {
      throw callError(err, t.href, signal)
    }
    if (res.statusCode === 202 || res.statusCode === 200) return res
    const text = await readCapped(res, MAX_ERROR_BODY, t.href).catch(() => '')
    throw httpFailure({ url: t.href, method }, res.statusCode, text)
  }
}

/**
 * Checks a provider URL before anything is sent: an http(s) URL without credentials, else
 * `MESH_ERR_CALL_UNREACHABLE` with `details.notSent` (the raw string is not echoed).
 */
function checkUrl (url: string): Target {
  let u: URL | undefined
  try {
    u = new URL(url)
  } catch {}
  const problem = u === undefined
    ? 'is not a URL'
    : u.protocol !== 'http:' && u.protocol !== 'https:' ? 'is not an http or https URL'
      : u.username !== '' || u.password !== '' ? 'carries credentials' : undefined
  if (problem !== undefined || u === undefined) {
    throw new MeshError('MESH_ERR_CALL_UNREACHABLE', `the provider's endpoint ${problem ?? ''}: nothing was sent`, { details: { notSent: true, refused: problem } })
  }
  return { origin: u.origin, path: `${u.pathname}${u.search}`, href: u.href }
}

/** The origin (pool key) of a URL, or undefined when it does not parse. */
export function originOf (url: string): string | undefined {
  try {
    return new URL(url).origin
  } catch {
    return undefined
  }
}

/** Hands a progress notification's fields (without its token) to the listener, if well formed. */
function progressOf (params: unknown, onProgress: (p: Progress) => void): void {
  if (typeof params !== 'object' || params === null) return
  const { progressToken: _, ...progress } = params as Progress & { progressToken?: unknown }
  if (typeof progress.progress === 'number') onProgress(progress)
}

const DEFAULT_MAX_RESPONSE = 10 * 1024 * 1024

function tooLarge (url: string, max: number): MeshError {
  return new MeshError('MESH_ERR_CALL_FAILED', `${url} sent an answer larger than ${max} bytes (maxResponseBytes)`, { details: { url, maxResponseBytes: max } })
}

/** Reads a JSON body, refusing more than `max` bytes (by Content-Length first, then by counting). */
async function readCapped (res: Dispatcher.ResponseData, max: number, url: string): Promise<string> {
  const declared = Number(res.headers['content-length'] ?? -1)
  if (declared > max) {
    discard(res)
    throw tooLarge(url, max)
  }
  if (declared >= 0) return await res.body.text()
  const chunks: Buffer[] = []
  let size = 0
  for await (const chunk of res.body) {
    size += (chunk as Buffer).length
    if (size > max) { discard(res); throw tooLarge(url, max) }
    chunks.push(chunk as Buffer)
  }
  return Buffer.concat(chunks, size).toString('utf8')
}

/** Drops the rest of a body and its connection; undici reports that as an error nobody waits for. */
function discard (res: Dispatcher.ResponseData): void {
  res.body.on('error', () => {})
  res.body.destroy()
}

/** Maps an undici or abort failure to a mesh error that says whether the request left this process. */
function callError (err: unknown, url: string, signal: AbortSignal): MeshError {
  if (err instanceof MeshError) return err
  if (signal.aborted) {
    const reason: unknown = signal.reason
    const timedOut = reason instanceof DOMException && reason.name === 'TimeoutError'
    return timedOut
      ? new MeshError('MESH_ERR_CALL_TIMEOUT', `the call to ${url} timed out`, { details: { url }, cause: err })
      : new MeshError('MESH_ERR_ABORTED', `the call to ${url} was aborted`, { details: { url }, cause: reason ?? err })
  }
  const code = (err as { code?: string }).code ?? ''
  if (NOT_SENT.has(code) && isConnectError(err)) {
    return new MeshError('MESH_ERR_CALL_UNREACHABLE', `${url} is unreachable (${code})`, { details: { url, errno: code, notSent: true }, cause: err })
  }
  return new MeshError('MESH_ERR_CALL_FAILED', `the call to ${url} failed: ${printable(String((err as Error).message))}`, { details: { url, errno: code }, cause: err })
}

/** True for errors raised while connecting (the request body was never written). */
function isConnectError (err: unknown): boolean {
  const e = err as { syscall?: string, code?: string }
  return e.syscall === 'connect' || e.code === 'UND_ERR_CONNECT_TIMEOUT' || e.code === 'ENOTFOUND' || e.code === 'EAI_AGAIN' || e.code === 'UND_ERR_CLOSED'
}
