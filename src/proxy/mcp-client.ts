import { Agent as HttpAgent, request as httpRequest } from 'node:http'
import type { IncomingMessage } from 'node:http'
import { Agent as HttpsAgent, request as httpsRequest } from 'node:https'
import type { AgentOptions as HttpsAgentOptions } from 'node:https'
import type { SecureContext } from 'node:tls'
import { LATEST_PROTOCOL_VERSION } from '@modelcontextprotocol/sdk/types.js'
import type { CallToolResult } from '@modelcontextprotocol/sdk/types.js'
import { MeshError } from '../errors.ts'
import { parseSpiffeId } from '../identity/spiffe-id.ts'
import { SseParser } from './sse.ts'
import { followAbort, timedOutAfter, unfollowAbort } from './deadline.ts'
import type { AbortFollower } from './deadline.ts'
import { httpFailure, initializeVersion, notMcp, printable, readMessage, rpcFailure, toolResult } from './answer.ts'
import type { RpcMessage } from './answer.ts'
import { PARTIAL_METHOD, PARTS_META_KEY } from './call-scope.ts'
import type { PartListener } from './call-scope.ts'
import { checkProvider } from '../identity/tls.ts'
import type { ExpectedPeer } from '../identity/tls.ts'
import { CallRequests, logMessageOf } from './server-requests.ts'
import type { LogMessage, ServerRequestHandler } from './server-requests.ts'

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
  /**
   * Asks the provider for the call's partial results (`ctx.emit`) and hands each to this, in
   * order; while a promise it returns is pending, the answer is not read further (backpressure
   * reaches the provider through TCP).
   */
  onPart?: PartListener
  /** Receives the log messages the provider sends while it serves the call (`notifications/message`). */
  onLog?: (message: LogMessage) => void
  /**
   * Answers the requests the provider sends while it serves the call (`sampling/createMessage`,
   * `elicitation/create`; see `ServerRequestHandler`). Without it they are answered with
   * JSON-RPC -32601, so the provider's tool fails at once rather than waits. At most
   * `MAX_SERVER_REQUESTS` (8) at once: one more fails the call.
   */
  onRequest?: ServerRequestHandler
  /** With mutual TLS: the SPIFFE ID and key the provider's signed advert endorses. */
  peer?: ExpectedPeer
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
  /**
   * Mutual TLS: calls present the agent's certificate (`context`, current after each renewal),
   * trusting only the bundle of the provider's own trust domain (`context(domain)`: ours, or a
   * registered partner's; undefined when not trusted), and accept a provider only with the
   * SPIFFE ID and key its advert endorses (`RawCallOptions.peer`).
   */
  tls?: { trustDomain: string, context: (trustDomain: string) => SecureContext | undefined }
}

/** What a call's notifications and requests are handed to. */
type Listeners = Pick<RawCallOptions, 'onProgress' | 'onPart' | 'onLog' | 'onRequest'>
interface Provider {
  agent: HttpAgent
  https: boolean
  host: string
  port: number
  hostHeader: string
  version?: Promise<string>
  agreed?: string
  /** How its agent was made: the answers pool is made alike. */
  options: HttpsAgentOptions
  /**
   * A small pool of its own for answers to the provider's requests and for cancellations: on the
   * calls' pool they could wait behind the very calls that wait for them (every connection busy
   * with a call's stream), or behind calls queued for a connection.
   */
  answers?: Provider
  /** Renewed, forgotten or closed: an answers pool made for a call still in flight closes its connections once free. */
  retired?: boolean
}
/** A provider URL once checked: its pool's key, the path it POSTs to, the normalized form for messages. */
interface Target { origin: string, path: string, href: string }
/** A signal that never aborts, for calls with neither a signal nor a timeout. */
const NEVER = new AbortController().signal

const ACCEPT = 'application/json, text/event-stream'
/**
 * Declared in the one `initialize` a pool makes, which every call on it shares: whether a
 * provider's request can be answered is known per call (its `onRequest`), not per pool. So both
 * are always declared, and a call with no handler answers JSON-RPC -32601 at once: the tool fails
 * fast, as it would with a client that declared nothing, and a call that can answer (the gateway
 * with a host that samples) is not refused by the provider beforehand.
 */
const CLIENT_CAPABILITIES = { sampling: {}, elicitation: { form: {}, url: {} } }
/** Connect errors: the request never left this process, so another provider may take it. */
const NOT_SENT = new Set(['ECONNREFUSED', 'ECONNRESET', 'EHOSTUNREACH', 'ENETUNREACH', 'ENOTFOUND', 'EAI_AGAIN', 'ETIMEDOUT'])
/** OpenSSL's verdicts on a provider's chain (not our trust domain, expired, self-signed...). */
const CERT_ERRORS = /^(UNABLE_TO_|CERT_|DEPTH_ZERO_|SELF_SIGNED_|ERR_TLS_CERT)/
/** Most of an HTTP error body read (for a JSON-RPC error's message); the rest is dropped. */
const MAX_ERROR_BODY = 64 * 1024

/**
 * A lean MCP Streamable HTTP client: one keep-alive pool per provider (Node's own `http.Agent`
 * or `https.Agent`: undici cost 4 to 12 MB of memory per process), one `initialize` per
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

  /** Open sockets of the pools, busy and idle (metrics read it at scrape time). */
  get connections (): number {
    let n = 0
    for (const p of this.#providers.values()) {
      for (const agent of agentsOf(p)) {
        for (const list of Object.values(agent.sockets)) n += list?.length ?? 0
        for (const list of Object.values(agent.freeSockets)) n += list?.length ?? 0
      }
    }
    return n
  }

  /**
   * Calls `tool` on the MCP endpoint at `url`; throws MeshError `MESH_ERR_CALL_*` codes. A `url`
   * that is not an http(s) URL without credentials is `MESH_ERR_CALL_UNREACHABLE` with
   * `details.notSent` (nothing was sent).
   */
  async callTool (url: string, tool: string, args: unknown, options: RawCallOptions): Promise<CallToolResult> {
    const signal = callSignal(options)
    const target = this.#target(url)
    const p = this.#provider(target, options.peer)
    const version = await this.#version(target, p, signal)
    const params: Record<string, unknown> = { name: tool, arguments: args ?? {} }
    if (options.onProgress !== undefined || options.onPart !== undefined) {
      params._meta = { progressToken: this.#nextId, ...(options.onPart === undefined ? {} : { [PARTS_META_KEY]: true }) }
    }
    const result = await this.#post(target, p, 'tools/call', params, signal, { ...options.headers, 'mcp-protocol-version': version }, options)
    return toolResult({ url: target.href, method: 'tools/call' }, result)
  }

  /**
   * Sends one request of another method (`mesh/spans`) to the endpoint at `url`, over the same
   * pools, identity checks and errors as `callTool`; returns its `result`.
   */
  async request (url: string, method: string, params: Record<string, unknown>, options: Pick<RawCallOptions, 'signal' | 'peer' | 'timeoutMs'>): Promise<unknown> {
    const signal = callSignal(options)
    const target = this.#target(url)
    const p = this.#provider(target, options.peer)
    const version = await this.#version(target, p, signal)
    return await this.#post(target, p, method, params, signal, { 'mcp-protocol-version': version })
  }

  /**
   * Our certificate was renewed: new calls open new pools with it; the old pools finish the
   * calls in flight on their connections, then close them.
   */
  renew (): void {
    for (const p of this.#providers.values()) {
      p.retired = true
      for (const agent of agentsOf(p)) retire(agent)
    }
    this.#providers.clear()
  }

  /** Closes every pool. */
  async close (): Promise<void> {
    this.#closed = true
    for (const p of this.#providers.values()) {
      p.retired = true
      for (const agent of agentsOf(p)) agent.destroy()
    }
    this.#providers.clear()
    this.#byUrl.clear()
  }

  /**
   * Forgets the pool of `url`'s origin (its provider went away or moved) and closes its
   * connections; `graceful` (the provider renewed its certificate) lets calls in flight finish
   * on theirs first. A later call to that origin opens a new pool.
   */
  forget (url: string, graceful = false): void {
    const origin = originOf(url)
    if (origin === undefined) return
    for (const [key, p] of this.#providers) {
      if (key !== origin && !key.startsWith(origin + '#')) continue
      this.#providers.delete(key)
      p.retired = true
      for (const agent of agentsOf(p)) {
        if (graceful) retire(agent)
        else agent.destroy()
      }
    }
    for (const [u, t] of this.#byUrl) if (t.origin === origin) this.#byUrl.delete(u)
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

  #provider (t: Target, peer: ExpectedPeer | undefined): Provider {
    // One pool per key the provider's advert endorses: a renewed provider gets a new pool.
    const key = peer === undefined ? t.origin : `${t.origin}#${peer.keyHash}`
    let p = this.#providers.get(key)
    if (p === undefined) {
      const u = new URL(t.origin)
      const https = u.protocol === 'https:'
      const tls = this.#init.tls
      if (tls !== undefined && !https) {
        throw new MeshError('MESH_ERR_CALL_UNTRUSTED', `${t.href} was not called: it serves plain HTTP, and this agent calls only with mutual TLS`, { details: { url: t.href, notSent: true } })
      }
      const domain = peer === undefined ? tls?.trustDomain : parseSpiffeId(peer.spiffeId).trustDomain
      const secureContext = tls === undefined ? undefined : tls.context(domain!)
      if (tls !== undefined && secureContext === undefined) {
        throw new MeshError('MESH_ERR_CALL_UNTRUSTED', `${t.href} was not called: its trust domain ${domain} is not trusted (not ours, and not a registered entity)`, { details: { url: t.href, notSent: true } })
      }
      const options = {
        ...this.#init.connect,
        ...(tls === undefined ? {} : { secureContext, checkServerIdentity: checkProvider(peer, domain!) }),
        keepAlive: true,
        maxSockets: this.#init.connections ?? 16,
        // Idle connections close after 30 s (sooner when the server's Keep-Alive header says so).
        timeout: 30_000,
        scheduling: 'lifo' as const,
      }
      const host = u.hostname.startsWith('[') ? u.hostname.slice(1, -1) : u.hostname
      // As node:http writes it: the port only when it is not the scheme's default (URL drops those).
      p = { agent: this.#agent(https, options), https, host, port: Number(u.port === '' ? (https ? 443 : 80) : u.port), hostHeader: u.host, options }
      this.#providers.set(key, p)
    }
    return p
  }

  #agent (https: boolean, options: HttpsAgentOptions): HttpAgent {
    const agent = https ? new HttpsAgent(options) : new HttpAgent(options)
    armConnectTimeout(agent, https, this.#init.connectTimeoutMs ?? CONNECT_TIMEOUT_MS)
    return agent
  }

  /** The pool answers to `p`'s requests and cancellations go on: the same TLS identity, its own connections. */
  #answers (p: Provider): Provider {
    if (p.answers === undefined) {
      const options = { ...p.options, maxSockets: ANSWER_CONNECTIONS }
      p.answers = { ...p, agent: this.#agent(p.https, options), options }
      // Retiring or forgetting a pool ends its answers pool with it (agentsOf); one made later
      // for a call still in flight on a retired pool lives only as long as its answers.
      if (p.retired === true) retire(p.answers.agent)
    }
    return p.answers
  }

  /**
   * The protocol version agreed with the provider: initializes the pool's first call (once; again
   * after a failure). The initialize is shared by every call waiting for it, so it runs on its own
   * deadline, not on the signal of the call that started it: a lost hedge or a caller giving up
   * must not fail the others. Each call waits only as long as its own signal allows.
   */
  async #version (t: Target, p: Provider, signal: AbortSignal): Promise<string> {
    if (p.agreed !== undefined) return p.agreed
    p.version ??= this.#initialize(t, p, AbortSignal.timeout(INITIALIZE_TIMEOUT_MS)).then((v) => {
      p.agreed = v
      return v
    }, (err: unknown) => {
      p.version = undefined
      throw err
    })
    if (signal === NEVER) return await p.version
    if (signal.aborted) throw callError(signal.reason, t.href, signal)
    const shared = p.version
    return await new Promise<string>((resolve, reject) => {
      const onAbort = (): void => { reject(callError(signal.reason, t.href, signal)) }
      signal.addEventListener('abort', onAbort, { once: true })
      shared.then(resolve, reject).finally(() => { signal.removeEventListener('abort', onAbort) })
    })
  }

  async #initialize (t: Target, p: Provider, signal: AbortSignal): Promise<string> {
    const result = await this.#post(t, p, 'initialize', {
      protocolVersion: LATEST_PROTOCOL_VERSION,
      capabilities: CLIENT_CAPABILITIES,
      clientInfo: { name: this.#init.clientName, version: this.#init.clientVersion ?? '0.0.0' },
    }, signal, {})
    const version = initializeVersion({ url: t.href, method: 'initialize' }, result)
    const res = await this.#send(t, p, 'notifications/initialized', { jsonrpc: '2.0', method: 'notifications/initialized' }, signal, { 'mcp-protocol-version': version })
    // A 202 was drained by #send; a body nobody asked for is dropped with its connection.
    if (res.statusCode !== 202) discard(res)
    return version
  }

  /** Sends one request and returns its `result`, reading a JSON or an SSE answer. */
  async #post (t: Target, p: Provider, method: string, params: unknown, signal: AbortSignal, headers: Record<string, string>, listeners: Listeners = {}): Promise<unknown> {
    const id = this.#nextId++
    try {
      return await this.#exchange(t, p, id, method, params, signal, headers, listeners)
    } catch (err) {
      // The caller gave up on a call that may have reached the provider: tell it, as MCP asks,
      // so it stops the tool (closing the connection alone says nothing to a proxy in between).
      if (signal.aborted && method === 'tools/call') this.#cancel(t, p, id, headers['mcp-protocol-version'], signal.reason)
      throw err
    }
  }

  /**
   * Sends `notifications/cancelled` for request `id`, in the background, on the answers pool: on
   * the calls' pool it would queue behind calls waiting for a connection, and be dropped.
   */
  #cancel (t: Target, p: Provider, id: number, version: string | undefined, reason: unknown): void {
    const why = reason instanceof DOMException && reason.name === 'TimeoutError' ? 'the caller timed out' : 'the caller aborted the call'
    const message = { jsonrpc: '2.0', method: 'notifications/cancelled', params: { requestId: id, reason: why } }
    post(this.#answers(p), t.path, JSON.stringify(message), version === undefined ? {} : { 'mcp-protocol-version': version }, AbortSignal.timeout(CANCEL_TIMEOUT_MS))
      .then((res) => { res.resume() }, () => {}) // best effort: the provider may be gone
  }

  async #exchange (t: Target, p: Provider, id: number, method: string, params: unknown, signal: AbortSignal, headers: Record<string, string>, { onProgress, onPart, onLog, onRequest }: Listeners): Promise<unknown> {
    const asked = { url: t.href, method }
    const res = await this.#send(t, p, method, { jsonrpc: '2.0', id, method, params }, signal, headers)
    const type = (res.headers['content-type'] ?? '').toLowerCase()
    const max = this.#init.maxResponseBytes ?? DEFAULT_MAX_RESPONSE
    let answer: Exclude<RpcMessage, { kind: 'other' }> | undefined
    let requests: CallRequests | undefined
    try {
      if (type.startsWith('text/event-stream')) {
        const sse = new SseParser()
        let size = 0
        res.setEncoding('utf8')
        stream: for await (const chunk of res) {
          size += (chunk as string).length
          if (size > max) { discard(res); throw tooLarge(t.href, max) }
          for (const data of sse.push(chunk as string)) {
            const m = readMessage(data, id, asked)
            if (m.kind !== 'other') {
              answer = m
              break stream // whatever follows the answer is not read: the call is over
            }
            if (m.id !== undefined && m.method !== undefined) {
              // The provider asks something of its caller; answered on a POST of our own.
              requests ??= new CallRequests({ handler: onRequest, url: t.href, fail: (err) => { res.destroy(err) }, reply: async (message, asking) => { await this.#reply(t, p, message, asking, signal, headers['mcp-protocol-version']) } })
              requests.request(m.id, m.method, m.params)
            } else if (m.method === 'notifications/progress' && onProgress !== undefined) progressOf(m.params, onProgress)
            else if (m.method === PARTIAL_METHOD && onPart !== undefined && typeof m.params === 'object' && m.params !== null) {
              // Awaited: a reader with no room left stops this loop, so the socket is not read.
              await onPart((m.params as { part?: unknown }).part)
            } else if (m.method === 'notifications/message' && onLog !== undefined) {
              const log = logMessageOf(m.params)
              if (log !== undefined) onLog(log)
            } else if (m.method === 'notifications/cancelled') requests?.cancelled(m.params)
          }
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
    } finally {
      requests?.end()
    }
    if (answer === undefined) throw new MeshError('MESH_ERR_CALL_FAILED', `${t.href} closed the stream without answering ${method}`, { details: { url: t.href, method } })
    if (answer.kind === 'error') throw rpcFailure(asked, answer.error)
    return answer.result
  }

  /**
   * POSTs our answer to one of the provider's requests, on the answers pool, with the call's
   * protocol version; the endpoint takes it with 202. Given up with the call, or after
   * ANSWER_TIMEOUT_MS.
   */
  async #reply (t: Target, p: Provider, message: object, asking: string, signal: AbortSignal, version: string | undefined): Promise<void> {
    const limit = AbortSignal.any([signal, AbortSignal.timeout(ANSWER_TIMEOUT_MS)])
    const res = await this.#send(t, this.#answers(p), `the answer to ${asking}`, message, limit, version === undefined ? {} : { 'mcp-protocol-version': version })
    if (res.statusCode !== 202) discard(res)
  }

  async #send (t: Target, p: Provider, method: string, message: unknown, signal: AbortSignal, headers: Record<string, string>): Promise<IncomingMessage> {
    let res: IncomingMessage
    try {
      res = await post(p, t.path, JSON.stringify(message), headers, signal)
    } catch (err) {
      throw callError(err, t.href, signal)
    }
    if (res.statusCode === 200) return res
    if (res.statusCode === 202) {
      // No body. Drained before the next request goes out, so that one reuses this connection.
      await new Promise((resolve) => { res.once('end', resolve).once('close', resolve).resume() })
      return res
    }
    const text = await readCapped(res, MAX_ERROR_BODY, t.href).catch(() => '')
    throw httpFailure({ url: t.href, method }, res.statusCode ?? 0, text)
  }
}

/**
 * The one signal a call runs on: the caller's, its own timeout, both, or one that never aborts
 * (so the hot path links nothing when neither is given).
 */
function callSignal ({ signal, timeoutMs }: Pick<RawCallOptions, 'signal' | 'timeoutMs'>): AbortSignal {
  if (timeoutMs === undefined) return signal ?? NEVER
  const timeout = AbortSignal.timeout(timeoutMs)
  return signal === undefined ? timeout : AbortSignal.any([signal, timeout])
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

const CONNECT_TIMEOUT_MS = 10_000
/** A cancellation is sent in the background and given up after this long. */
const CANCEL_TIMEOUT_MS = 2_000
/** How long a provider's shared `initialize` may take (each call still gives up on its own deadline). */
const INITIALIZE_TIMEOUT_MS = 15_000
/** How long an answer to a provider's request may take to be delivered (its call's deadline may end it sooner). */
const ANSWER_TIMEOUT_MS = 10_000
/** Connections per provider for answers to its requests and cancellations (they are small and short). */
const ANSWER_CONNECTIONS = 4

/** POSTs `body` on the provider's pool; resolves with the response once its head has arrived. */
function post (p: Provider, path: string, body: string, headers: Record<string, string>, signal: AbortSignal): Promise<IncomingMessage> {
  return new Promise((resolve, reject) => {
    if (signal.aborted) { reject(abortError(signal)); return }
    const req = (p.https ? httpsRequest : httpRequest)({
      host: p.host,
      port: p.port,
      path,
      method: 'POST',
      agent: p.agent,
      headers: headerList(p, headers, body),
    }, resolve)
    req.on('error', reject)
    // Linked by hand rather than through the `signal` option, which adds a stream watcher per
    // request, and followed as the call path's signals are (a list, not an `abort` listener):
    // unfollowed when the exchange ends (the request closes after its response).
    if (signal !== NEVER) {
      const onAbort: AbortFollower = { handleEvent () { req.destroy(abortError(signal)) } }
      followAbort(signal, onAbort)
      req.once('close', () => { unfollowAbort(signal, onAbort) })
    }
    req.end(body)
  })
}

/** What the `signal` option would have destroyed the request with. */
function abortError (signal: AbortSignal): Error {
  return Object.assign(new Error('The operation was aborted', { cause: signal.reason }), { name: 'AbortError', code: 'ABORT_ERR' })
}

/** The ones we set; a caller's header of the same name is dropped, as a later key of an object literal wins. */
const OWN_HEADERS = new Set(['content-type', 'accept', 'content-length'])

/**
 * The request's headers as a flat list: node:http writes such a list as is (still validating
 * each name and value), where an object costs a setHeader and lookups per header. The Host
 * header is the one node:http would add, unless the caller sets its own.
 */
function headerList (p: Provider, headers: Record<string, string>, body: string): string[] {
  const list: string[] = []
  let host = false
  for (const name in headers) {
    const lower = name.toLowerCase()
    if (OWN_HEADERS.has(lower)) continue
    if (lower === 'host') host = true
    list.push(name, headers[name])
  }
  if (!host) list.push('host', p.hostHeader)
  list.push('content-type', 'application/json', 'accept', ACCEPT, 'content-length', String(Buffer.byteLength(body)))
  return list
}

/**
 * A connection (with its TLS handshake) not made within `ms` fails as unreachable (ETIMEDOUT on
 * connect: nothing was sent). Armed on each new connection the pool makes, so a call on a
 * pooled one pays nothing for it.
 */
function armConnectTimeout (agent: HttpAgent, https: boolean, ms: number): void {
  const create = agent.createConnection.bind(agent)
  agent.createConnection = (options, callback) => {
    const socket = create(options, callback)
    if (socket == null) return socket
    const timer = setTimeout(() => {
      socket.destroy(Object.assign(new Error(`connect timed out after ${ms} ms`), { code: 'ETIMEDOUT', syscall: 'connect' }))
    }, ms)
    const done = (): void => { clearTimeout(timer) }
    socket.once(https ? 'secureConnect' : 'connect', done)
    socket.once('close', done)
    return socket
  }
}

/** The pools of a provider: its calls', and its answers' once made. */
function agentsOf (p: Provider): HttpAgent[] {
  return p.answers === undefined ? [p.agent] : [p.agent, p.answers.agent]
}

/** An agent of a retired pool: its idle connections close now, its busy ones once their call ends. */
function retire (agent: HttpAgent): void {
  agent.on('free', (socket) => { socket.destroy() })
  for (const list of Object.values(agent.freeSockets)) for (const socket of list ?? []) socket.destroy()
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
  const tlsCode = (err as { code?: string }).code ?? ''
  if (CERT_ERRORS.test(tlsCode)) {
    return new MeshError('MESH_ERR_CALL_UNTRUSTED', `${url} was not called: its certificate was refused (${tlsCode})`, { details: { url, errno: tlsCode, notSent: true }, cause: err })
  }
  if (signal.aborted) {
    const reason: unknown = signal.reason
    const timedOut = reason instanceof DOMException && reason.name === 'TimeoutError'
    return timedOut
      ? new MeshError('MESH_ERR_CALL_TIMEOUT', `the call to ${url} ${timedOutAfter(reason)}`, { details: { url }, cause: err })
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
  return e.syscall === 'connect' || e.syscall === 'getaddrinfo' || e.code === 'ENOTFOUND' || e.code === 'EAI_AGAIN'
}
