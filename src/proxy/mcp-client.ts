import { Agent as HttpAgent, request as httpRequest } from 'node:http'
import type { IncomingMessage } from 'node:http'
import { Agent as HttpsAgent, request as httpsRequest } from 'node:https'
import type { AgentOptions as HttpsAgentOptions } from 'node:https'
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

/**
 * How outbound connections are made: the options of the `https.Agent` (or `http.Agent`) that pools
 * a provider's connections, minus the pooling the client owns. This is the TLS seam: pass a prebuilt
 * `secureContext` (built once; PEM buffers would be parsed again for every connection), or `ca`,
 * `cert`, `key`, `checkServerIdentity`, `servername`.
 */
export type ConnectOptions = Omit<HttpsAgentOptions, 'keepAlive' | 'keepAliveMsecs' | 'maxSockets' | 'maxTotalSockets' | 'maxFreeSockets' | 'scheduling' | 'timeout'>

/** How the client connects; `connect` is the TLS seam. */
export interface McpHttpClientInit {
  clientName: string
  clientVersion?: string
  /** Keep-alive connections per provider. */
  connections?: number
  /** Largest answer read from a provider (default 10 MiB, as MCP Mesh's maxResponseSize). */
  maxResponseBytes?: number
  connect?: ConnectOptions
  /** A connection (with its TLS handshake) not made within this is unreachable (default 10 s). */
  connectTimeoutMs?: number
}

interface Provider { agent: HttpAgent, https: boolean, host: string, port: number, path: string, version?: Promise<string> }
const NO_SIGNALS: AbortSignal[] = []
/** A signal that never aborts, for calls with neither a signal nor a timeout. */
const NEVER = new AbortController().signal

const ACCEPT = 'application/json, text/event-stream'
/** Connect errors: the request never left this process, so another provider may take it. */
const NOT_SENT = new Set(['ECONNREFUSED', 'ECONNRESET', 'EHOSTUNREACH', 'ENETUNREACH', 'ENOTFOUND', 'EAI_AGAIN', 'ETIMEDOUT'])

/**
 * A lean MCP Streamable HTTP client: one keep-alive pool per provider (Node's own `http.Agent`
 * or `https.Agent`: undici cost 4 to 12 MB of memory per process), one `initialize` per
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
    for (const p of this.#providers.values()) p.agent.destroy()
    this.#providers.clear()
  }

  /** Forgets a provider's pool (it went away). */
  forget (url: string): void {
    const origin = new URL(url).origin
    const p = this.#providers.get(origin)
    if (p === undefined) return
    this.#providers.delete(origin)
    p.agent.destroy()
  }

  #provider (url: string): Provider {
    if (this.#closed) throw new MeshError('MESH_ERR_NOT_STARTED', 'the MCP client is closed (its node has stopped)')
    const known = this.#byUrl.get(url)
    if (known !== undefined && this.#providers.get(known.origin) === known.provider) return known.provider
    const u = new URL(url)
    let p = this.#providers.get(u.origin)
    if (p === undefined) {
      const https = u.protocol === 'https:'
      const options = {
        ...this.#init.connect,
        keepAlive: true,
        maxSockets: this.#init.connections ?? 16,
        // Idle connections close after 30 s (sooner when the server's Keep-Alive header says so).
        timeout: 30_000,
        scheduling: 'lifo' as const,
      }
      const agent = https ? new HttpsAgent(options) : new HttpAgent(options)
      const host = u.hostname.startsWith('[') ? u.hostname.slice(1, -1) : u.hostname
      p = { agent, https, host, port: Number(u.port === '' ? (https ? 443 : 80) : u.port), path: u.pathname }
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
    const type = res.headers['content-type'] ?? ''
    let answer: { result?: unknown, error?: { code: number, message: string, data?: unknown } } | undefined
    try {
      if (type.startsWith('text/event-stream')) {
        const sse = new SseParser()
        const max = this.#init.maxResponseBytes ?? DEFAULT_MAX_RESPONSE
        let size = 0
        res.setEncoding('utf8')
        for await (const chunk of res) {
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

  async #send (url: string, p: Provider, message: unknown, signal: AbortSignal, headers: Record<string, string>): Promise<IncomingMessage> {
    let res: IncomingMessage
    try {
      res = await post(p, JSON.stringify(message), headers, signal, this.#init.connectTimeoutMs ?? CONNECT_TIMEOUT_MS)
    } catch (err) {
      throw callError(err, url, signal)
    }
    if (res.statusCode === 200) return res
    if (res.statusCode === 202) {
      // No body. Drained before the next request goes out, so that one reuses this connection.
      await new Promise((resolve) => { res.once('end', resolve).once('close', resolve).resume() })
      return res
    }
    const text = await readCapped(res, 64 * 1024, url).catch(() => '')
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

const CONNECT_TIMEOUT_MS = 10_000

/** POSTs `body` on the provider's pool; resolves with the response once its head has arrived. */
function post (p: Provider, body: string, headers: Record<string, string>, signal: AbortSignal, connectTimeoutMs: number): Promise<IncomingMessage> {
  return new Promise((resolve, reject) => {
    const req = (p.https ? httpsRequest : httpRequest)({
      host: p.host,
      port: p.port,
      path: p.path,
      method: 'POST',
      agent: p.agent,
      headers: { ...headers, 'content-type': 'application/json', accept: ACCEPT, 'content-length': Buffer.byteLength(body) },
      signal,
    }, resolve)
    req.on('error', reject)
    req.once('socket', (socket) => {
      if (!socket.connecting) return // a pooled connection
      const timer = setTimeout(() => {
        req.destroy(Object.assign(new Error(`connect timed out after ${connectTimeoutMs} ms`), { code: 'ETIMEDOUT', syscall: 'connect' }))
      }, connectTimeoutMs)
      const done = (): void => { clearTimeout(timer) }
      socket.once(p.https ? 'secureConnect' : 'connect', done)
      socket.once('close', done)
    })
    req.end(body)
  })
}

function tooLarge (url: string, max: number): MeshError {
  return new MeshError('MESH_ERR_CALL_FAILED', `${url} sent an answer larger than ${max} bytes (maxResponseBytes)`, { details: { url, maxResponseBytes: max } })
}

/** Reads a JSON body, refusing more than `max` bytes (by Content-Length first, then by counting). */
function readCapped (res: IncomingMessage, max: number, url: string): Promise<string> {
  return new Promise((resolve, reject) => {
    if (Number(res.headers['content-length'] ?? -1) > max) {
      discard(res)
      reject(tooLarge(url, max))
      return
    }
    const chunks: Buffer[] = []
    let size = 0
    res.on('data', (chunk: Buffer) => {
      size += chunk.length
      if (size > max) { discard(res); reject(tooLarge(url, max)) } else chunks.push(chunk)
    })
    res.on('end', () => { resolve(chunks.length === 1 ? chunks[0].toString('utf8') : Buffer.concat(chunks, size).toString('utf8')) })
    res.on('error', reject)
  })
}

/** Drops the rest of a body and its connection (the socket is not reused). */
function discard (res: IncomingMessage): void {
  res.on('error', () => {})
  res.destroy()
}

/** Maps a connection or abort failure to a mesh error that says whether the request left this process. */
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
  return e.syscall === 'connect' || e.syscall === 'getaddrinfo' || e.code === 'ENOTFOUND' || e.code === 'EAI_AGAIN'
}
