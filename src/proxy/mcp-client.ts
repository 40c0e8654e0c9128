import { Pool } from 'undici'
import type { Dispatcher, buildConnector } from 'undici'
import { CallToolResultSchema, LATEST_PROTOCOL_VERSION, SUPPORTED_PROTOCOL_VERSIONS } from '@modelcontextprotocol/sdk/types.js'
import type { CallToolResult } from '@modelcontextprotocol/sdk/types.js'
import { MeshError } from '../errors.ts'
import type { ErrorCode } from '../errors.ts'
import { SseParser } from './sse.ts'

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

interface Provider { pool: Pool, path: string, version?: Promise<string> }
const NO_SIGNALS: AbortSignal[] = []
/** A signal that never aborts, for calls with neither a signal nor a timeout. */
const NEVER = new AbortController().signal

const ACCEPT = 'application/json, text/event-stream'
/** undici connect errors: the request never left this process, so another provider may take it. */
const NOT_SENT = new Set(['ECONNREFUSED', 'ECONNRESET', 'EHOSTUNREACH', 'ENETUNREACH', 'ENOTFOUND', 'EAI_AGAIN', 'UND_ERR_CONNECT_TIMEOUT'])

/**
 * A lean MCP Streamable HTTP client: one keep-alive pool per provider, one `initialize` per
 * provider (the negotiated version is cached), then `tools/call` as a single POST each.
 * Results are checked against the SDK's `CallToolResultSchema`.
 */
export class McpHttpClient {
  readonly #init: McpHttpClientInit
  readonly #providers = new Map<string, Provider>()
  /** Parsed URLs: parsing one costs more than the rest of the lookup. */
  readonly #byUrl = new Map<string, { origin: string, provider: Provider }>()
  #nextId = 1
  #closed = false

  constructor (init: McpHttpClientInit) {
    this.#init = init
  }

  /** Calls `tool` on the MCP endpoint at `url`; throws MeshError `MESH_ERR_CALL_*` codes. */
  async callTool (url: string, tool: string, args: unknown, options: RawCallOptions): Promise<CallToolResult> {
    const signals = options.timeoutMs === undefined ? NO_SIGNALS : [AbortSignal.timeout(options.timeoutMs)]
    const signal = options.signal === undefined
      ? (signals[0] ?? NEVER)
      : signals.length === 0 ? options.signal : AbortSignal.any([options.signal, ...signals])
    const p = this.#provider(url)
    const version = await (p.version ??= this.#initialize(url, p, signal).catch((err: unknown) => {
      p.version = undefined
      throw err
    }))
    const params: Record<string, unknown> = { name: tool, arguments: args ?? {} }
    if (options.onProgress !== undefined) params._meta = { progressToken: this.#nextId }
    const message = await this.#post(url, p, 'tools/call', params, signal, { ...options.headers, 'mcp-protocol-version': version }, options.onProgress)
    const parsed = CallToolResultSchema.safeParse(message)
    if (!parsed.success) throw new MeshError('MESH_ERR_CALL_FAILED', `${url} returned a malformed tools/call result`, { details: { url, issues: parsed.error.issues } })
    return parsed.data
  }

  /** Closes every pool. */
  async close (): Promise<void> {
    this.#closed = true
    const pools = [...this.#providers.values()].map((p) => p.pool.destroy())
    this.#providers.clear()
    await Promise.allSettled(pools)
  }

  /** Forgets a provider's pool (it went away). */
  forget (url: string): void {
    const origin = new URL(url).origin
    const p = this.#providers.get(origin)
    if (p === undefined) return
    this.#providers.delete(origin)
    p.pool.destroy().catch(() => {})
  }

  #provider (url: string): Provider {
    if (this.#closed) throw new MeshError('MESH_ERR_NOT_STARTED', 'the MCP client is closed (its node has stopped)')
    const known = this.#byUrl.get(url)
    if (known !== undefined && this.#providers.get(known.origin) === known.provider) return known.provider
    const u = new URL(url)
    let p = this.#providers.get(u.origin)
    if (p === undefined) {
      const pool = new Pool(u.origin, {
        connections: this.#init.connections ?? 16,
        keepAliveTimeout: 30_000,
        ...(this.#init.connect === undefined ? {} : { connect: this.#init.connect }),
      })
      p = { pool, path: u.pathname }
      this.#providers.set(u.origin, p)
    }
    if (this.#byUrl.size > 10_000) this.#byUrl.clear()
    this.#byUrl.set(url, { origin: u.origin, provider: p })
    return p
  }

  async #initialize (url: string, p: Provider, signal: AbortSignal): Promise<string> {
    const result = await this.#post(url, p, 'initialize', {
      protocolVersion: LATEST_PROTOCOL_VERSION,
      capabilities: {},
      clientInfo: { name: this.#init.clientName, version: this.#init.clientVersion ?? '0.0.0' },
    }, signal, {}) as { protocolVersion?: string }
    const version = result.protocolVersion ?? ''
    if (!SUPPORTED_PROTOCOL_VERSIONS.includes(version)) {
      throw new MeshError('MESH_ERR_CALL_FAILED', `${url} negotiated an unsupported MCP version ${version}`, { details: { url, version } })
    }
    await this.#send(url, p, { jsonrpc: '2.0', method: 'notifications/initialized' }, signal, { 'mcp-protocol-version': version })
    return version
  }

  /** Sends one request and returns its `result`, reading a JSON or an SSE answer. */
  async #post (url: string, p: Provider, method: string, params: unknown, signal: AbortSignal, headers: Record<string, string>, onProgress?: (p: Progress) => void): Promise<unknown> {
    const id = this.#nextId++
    const res = await this.#send(url, p, { jsonrpc: '2.0', id, method, params }, signal, headers)
    const type = String(res.headers['content-type'] ?? '')
    let answer: { result?: unknown, error?: { code: number, message: string, data?: unknown } } | undefined
    try {
      if (type.startsWith('text/event-stream')) {
        const sse = new SseParser()
        const max = this.#init.maxResponseBytes ?? DEFAULT_MAX_RESPONSE
        let size = 0
        res.body.setEncoding('utf8')
        for await (const chunk of res.body) {
          size += (chunk as string).length
          if (size > max) { discard(res); throw tooLarge(url, max) }
          for (const data of sse.push(chunk as string)) {
            const m = JSON.parse(data) as { id?: unknown, method?: string, params?: Progress & { progressToken?: unknown } }
            if (m.id === id && m.method === undefined) answer = m as typeof answer
            else if (m.method === 'notifications/progress' && onProgress !== undefined && m.params !== undefined) {
              const { progressToken: _, ...progress } = m.params
              onProgress(progress)
            }
          }
          if (answer !== undefined) break
        }
        discard(res)
      } else {
        answer = JSON.parse(await readCapped(res, this.#init.maxResponseBytes ?? DEFAULT_MAX_RESPONSE, url)) as typeof answer
      }
    } catch (err) {
      throw callError(err, url, signal)
    }
    if (answer === undefined) throw new MeshError('MESH_ERR_CALL_FAILED', `${url} closed the stream without answering ${method}`, { details: { url, method } })
    if (answer.error !== undefined) {
      throw new MeshError('MESH_ERR_CALL_FAILED', `${url} answered ${method} with JSON-RPC error ${answer.error.code}: ${answer.error.message}`, { details: { url, method, rpcError: answer.error } })
    }
    return answer.result
  }

  async #send (url: string, p: Provider, message: unknown, signal: AbortSignal, headers: Record<string, string>): Promise<Dispatcher.ResponseData> {
    const body = JSON.stringify(message)
    let res: Dispatcher.ResponseData
    try {
      res = await p.pool.request({
        path: p.path,
        method: 'POST',
        headers: { ...headers, 'content-type': 'application/json', accept: ACCEPT },
        body,
        signal,
      })
    } catch (err) {
      throw callError(err, url, signal)
    }
    if (res.statusCode === 202 || res.statusCode === 200) return res
    const text = await res.body.text().catch(() => '')
    let meshCode: ErrorCode = 'MESH_ERR_CALL_FAILED'
    let rpcError: { message?: string, data?: { code?: string } } | undefined
    try {
      rpcError = (JSON.parse(text) as { error?: typeof rpcError }).error
    } catch {}
    const code = rpcError?.data?.code
    if (code === 'MESH_ERR_SERVER_BUSY' || code === 'MESH_ERR_SERVER_DRAINING' || code === 'MESH_ERR_SERVER_BODY_TOO_LARGE') meshCode = code
    throw new MeshError(meshCode, `${url} answered HTTP ${res.statusCode}: ${rpcError?.message ?? text.slice(0, 200)}`, {
      details: { url, status: res.statusCode, notSent: res.statusCode === 503 },
    })
  }
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
  return new MeshError('MESH_ERR_CALL_FAILED', `the call to ${url} failed: ${(err as Error).message}`, { details: { url, errno: code }, cause: err })
}

/** True for errors raised while connecting (the request body was never written). */
function isConnectError (err: unknown): boolean {
  const e = err as { syscall?: string, code?: string }
  return e.syscall === 'connect' || e.code === 'UND_ERR_CONNECT_TIMEOUT' || e.code === 'ENOTFOUND' || e.code === 'EAI_AGAIN'
}
