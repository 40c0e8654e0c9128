import type { CallToolResult } from '@modelcontextprotocol/sdk/types.js'
import type { z } from 'zod'
import { MeshError, isMeshError } from '../errors.ts'
import type { Clock } from '../clock.ts'
import { normalizeDependency } from '../topology/dependency.ts'
import type { DependencySpec, ResolutionSpec } from '../topology/dependency.ts'
import type { Candidate, Resolution } from '../topology/resolver.ts'
import { retrySafe } from '../topology/advert.ts'
import type { Progress } from './mcp-client.ts'
import type { LogMessage, ServerRequestHandler } from './server-requests.ts'
import { deadline, timeoutReason } from './deadline.ts'
import { callScope } from './call-scope.ts'
import type { CallScope, PartListener } from './call-scope.ts'
import type { HeaderFilter } from './headers.ts'
import type { Breakers } from './breaker.ts'
import { SessionPins } from './sessions.ts'
import { hedge } from './hedge.ts'
import type { CallEvents } from '../telemetry/events.ts'
import type { Context, Span, Tracer } from '@opentelemetry/api'
import { attemptContext, failSpan, injectInto, startAttemptSpan, startCallSpan, withContext } from '../telemetry/spans.ts'
import type { Spare } from './hedge.ts'
import { backoffDelay, callPolicy, outboundHeaders, sleep, splitRoute, watchAttempt } from './call-policy.ts'
import type { Balance, RetryPolicy, RetryPolicyInput } from './call-policy.ts'
import { breakerOutcome, circuitOpen, exhausted, isAnswer, lostReason, noProvider, pinChanged, retryable, streamBroken, timedOut, timeoutOrAbort, unwrap } from './call-outcomes.ts'
import { meshStream } from './mesh-stream.ts'
import type { MeshStream } from './mesh-stream.ts'

export type { Balance, RetryPolicy, RetryPolicyInput } from './call-policy.ts'
export type { MeshStream } from './mesh-stream.ts'

/**
 * A dependency as declared on a tool: a capability name, a spec, an ordered list of specs, or
 * a spec with call options. `output` (a zod schema) types and checks the result.
 */
export type DependencyDeclaration = DependencySpec | (ResolutionSpec & Partial<RetryPolicyInput> & {
  /** How calls spread among equally ranked providers (default: the node's `balance`, round robin). */
  balance?: Balance
  /**
   * A weighted split (canaries): each call takes one branch, the spec with that branch's version
   * or tags, by weight (`[{ weight: 90, version: '^1' }, { weight: 10, version: '^2' }]`).
   */
  split?: Array<{ weight: number, version?: string, tags?: ResolutionSpec['tags'] }>
  /**
   * Pins each session (the `session` key of a call) to the provider of its first call; when that
   * provider is gone, the call fails with `MESH_ERR_CALL_SESSION_LOST` instead of moving.
   */
  session?: boolean
  /** Timeout of one call through this dependency, in ms (default: the provider's recommendation, else the node's `callTimeoutMs`). */
  timeout?: number
  /**
   * Hedging, for read-only and idempotent tools: after this many ms without an answer, the call
   * is also sent to another provider; the first answer wins, the other is cancelled.
   */
  hedgeAfterMs?: number
  /** `false`: spread calls over every equally ranked provider, not those of this agent's zone and trust domain first. */
  locality?: boolean
  /** Checks and types the result (the provider's structured content). */
  output?: z.ZodType
})

/** Options of one call through an injected tool. */
export interface CallOptions {
  signal?: AbortSignal
  /** Overrides the dependency's timeout, in ms. */
  timeout?: number
  /** Overrides the dependency's retries (see `RetryPolicy`). */
  retries?: number
  /** Overrides the dependency's hedging (see `DependencyDeclaration.hedgeAfterMs`). */
  hedgeAfterMs?: number
  /** The session key (a dependency declared with `session: true`): the session's calls stay on one provider. */
  session?: string
  headers?: Record<string, string>
  onProgress?: (p: Progress) => void
  /**
   * Receives the call's partial results in order (a tool that streams: `ctx.emit`); a promise it
   * returns holds the next part back. Once a part has arrived, a failure of the provider is
   * `MESH_ERR_CALL_STREAM_BROKEN`: the call is not sent elsewhere. `stream()` is the easy way.
   */
  onPart?: PartListener
  /** Receives the log messages the provider sends while it serves the call (MCP `notifications/message`). */
  onLog?: (message: LogMessage) => void
  /**
   * Answers the provider's requests while it serves the call (`sampling/createMessage`,
   * `elicitation/create`): `(method, params, signal) => result`; an `McpError` thrown goes back
   * as that JSON-RPC error. Without it they get JSON-RPC -32601 (the provider's tool fails at
   * once). At most 8 at once; `signal` aborts when the call ends. A call with it is not hedged
   * (the host would be asked twice). Calls to this agent's own tools (in process) carry neither.
   */
  onRequest?: ServerRequestHandler
  /**
   * Returns the provider's whole MCP result (`CallToolResult`: content, structured content,
   * `_meta`) instead of its structured content; `output` is not applied. An `isError` result still
   * throws. For callers that pass results on as MCP (the gateway).
   */
  raw?: boolean
}

/** Call options that return the provider's whole MCP result. */
export type RawResultOptions = CallOptions & { raw: true }

/** What a caller counts about its calls through injected tools. */
export interface CallStats {
  /** Calls that returned a result. */
  ok: number
  /** Calls that failed, by error code. */
  failed: Record<string, number>
  /** Times a call went to the next candidate: refused before sending, or lost mid-call (read-only or idempotent tools). */
  failovers: number
  /** Times a call was sent again after it failed (`retries`). */
  retries: number
  /** Second attempts sent because the first was slow (`hedgeAfterMs`). */
  hedges: number
  /** Hedged calls the second attempt answered first. */
  hedgesWon: number
  /** Keep-alive pools open now, one per provider origin called (closed when its member leaves). */
  readonly pools: number
  /** Providers tried last for now, because they refused a call. */
  readonly avoided: number
}

/** Who served a call. */
export interface ProviderInfo {
  agent: string
  peerId: string
  tool: string
  endpoint?: string
  /** True when the provider was this agent itself (called in process, no network). */
  local: boolean
}

/**
 * An injected remote tool: call it like a function. It resolves its provider from the local
 * replica on every call (so a better provider is used at once), calls it directly, and returns
 * the structured result (or the content, when the tool returns no structured content).
 */
export interface MeshTool<R = unknown> {
  (args: Record<string, unknown> | undefined, options: RawResultOptions): Promise<CallToolResult>
  (args?: Record<string, unknown>, options?: CallOptions): Promise<R>
  /** The same call, also saying which provider served it. */
  invoke(args: Record<string, unknown> | undefined, options: RawResultOptions): Promise<{ result: CallToolResult, provider: ProviderInfo }>
  invoke(args?: Record<string, unknown>, options?: CallOptions): Promise<{ result: R, provider: ProviderInfo }>
  /**
   * The same call, streamed: iterate its partial results (`for await (const part of
   * weather.stream(args))`), then read the final one (`await s.result`). See `MeshStream`.
   */
  stream(args?: Record<string, unknown>, options?: Omit<CallOptions, 'onPart' | 'raw'>): MeshStream<R>
  /** Whether a provider exists now. */
  readonly available: boolean
  /** The capability of the first spec. */
  readonly capability: string
  /** The current resolution, with the reasons for every candidate (as `meshctl explain`). */
  resolve(): Resolution
  /** Ends a session (`session: true`): its next call starts a new one, on any provider. */
  endSession(session: string): void
}

/** What a MeshTool needs from its node. */
export interface MeshToolContext {
  clock: Clock
  selfPeerId: () => string
  /** Resolves against the current replica (deterministic; cached until the topology changes). */
  resolve: (specs: ResolutionSpec[], key: string) => Resolution
  /**
   * The order one call tries the candidates of `resolution` in: load spread among the equally
   * ranked (round robin per `key`), providers that just refused moved to the end.
   */
  order: (resolution: Resolution, key: string, balance?: Balance, locality?: boolean) => Candidate[]
  /** `c` refused a call before anything ran there: try it last for a while. */
  refused: (c: Candidate) => void
  /**
   * Calls `onLost` when the mesh marks `peerId` suspect, dead or gone while a call to it is in
   * flight; returns the way to stop watching.
   */
  watch: (peerId: string, onLost: (why: string) => void) => () => void
  /** Resolves on the next topology change, or when `signal` aborts. */
  nextChange: (signal: AbortSignal) => Promise<void>
  /** Until when calls with no provider wait for one (the settle window), in clock ms. */
  settleUntil: () => number
  callTimeoutMs: number
  /** The node's default retries. */
  retry: RetryPolicy
  /** The node's default hedging (none when absent). */
  hedgeAfterMs?: number
  /** The node's default balance. */
  balance: Balance
  /** This caller's circuit breakers and calls in flight, per provider. */
  breakers: Breakers
  /** Which headers calls carry: the node's list, and each partner domain's (with mutual TLS: our own `trustDomain`). */
  headers: { filter: HeaderFilter, partner: (trustDomain: string) => HeaderFilter, trustDomain?: string }
  /** Aborts every call (the node is stopping). */
  stopSignal: AbortSignal
  callRemote: (c: Candidate, args: unknown, options: { signal: AbortSignal, headers?: Record<string, string>, onProgress?: (p: Progress) => void, onPart?: PartListener } & Pick<CallOptions, 'onLog' | 'onRequest'>) => Promise<CallToolResult>
  /** Runs one of this agent's tools in process; `headers` are what a remote call would carry; its parts go to `onPart`. */
  callLocal: (tool: string, args: unknown, signal: AbortSignal, headers?: Record<string, string>, onPart?: PartListener) => Promise<CallToolResult>
  /** Capabilities offered in the mesh now (for NO_PROVIDER messages). */
  offered: () => string[]
  /** Observers of calls as they end (metrics). */
  events?: CallEvents
  /** Traces calls: a span per call and per attempt, their context sent on (none when absent). */
  tracer?: Tracer
  /** Counters of this caller's calls (`node.stats`). */
  stats: CallStats
}

/**
 * How many times, and how long in all, one call waits for lost providers to come back (a restart,
 * a suspicion refuted) or another to join, before it fails with what happened.
 */
const MAX_COMEBACKS = 3
const COMEBACK_MS = 5_000

/** A failure that says nothing of the tool: its provider was lost with the call, or never reached. */
function wasLost (e: MeshError): boolean {
  return e.code === 'MESH_ERR_CALL_PROVIDER_LOST' || e.code === 'MESH_ERR_CALL_UNREACHABLE'
}

/** How one call is sent: its retries and hedging, and its trace (the call's span context, the attempts so far). */
interface Plan {
  /** The call's whole timeout (its deadline's length), for the error that says it passed. */
  timeoutMs: number
  retries: number
  hedgeAfterMs: number | undefined
  trace: Context | undefined
  attempts: number
}

/** Ends an attempt's span: ok, or failed with the error's code. */
function endAttempt (span: Span, err: unknown): void {
  if (err === undefined) span.end()
  else failSpan(span, isMeshError(err) ? err.code : 'OTHER', err instanceof Error ? err.message : String(err))
}

/** The providers of `order` left out for open circuits (see `Breakers.ejected`); no list made while none is open. */
function ejectedOf (breakers: Breakers, order: Candidate[]): ReadonlySet<string> {
  return breakers.opened === 0 ? NO_PEERS : breakers.ejected(order.map((x) => x.peerId))
}
const NO_PEERS: ReadonlySet<string> = new Set()

/** Who served a call, as the caller is told. */
function providerInfo (c: Candidate, local: boolean): ProviderInfo {
  const info: ProviderInfo = { agent: c.agent, peerId: c.peerId, tool: c.tool.name, local }
  if (c.endpoint !== undefined) info.endpoint = c.endpoint
  return info
}

/** One failed attempt as the final error lists it: its code, why, and the provider. */
function attemptFailure (err: unknown, c: Candidate): MeshError {
  const e = err as MeshError
  return new MeshError(e.code ?? 'MESH_ERR_CALL_FAILED', e.message, { cause: err, details: { ...e.details, peerId: c.peerId, agent: c.agent } })
}

/** Builds the callable for one declared dependency. */
export function createMeshTool<R = unknown> (name: string, declaration: DependencyDeclaration, ctx: MeshToolContext): MeshTool<R> {
  const specs = normalizeDependency(declaration as DependencySpec)
  const options = callPolicy(name, (typeof declaration === 'object' && !Array.isArray(declaration) ? declaration : {}) as Record<string, unknown>)
  const { output, timeout } = options
  const key = JSON.stringify(specs)
  const route = splitRoute(name, specs, key, options.split, ctx)
  const pins = new SessionPins()
  const failed = (err: unknown): unknown => {
    const code = isMeshError(err) ? err.code : 'OTHER'
    ctx.stats.failed[code] = (ctx.stats.failed[code] ?? 0) + 1
    return err
  }

  async function invoke (args: Record<string, unknown> = {}, call: CallOptions = {}): Promise<{ result: R, provider: ProviderInfo }> {
    if (call.timeout !== undefined || call.retries !== undefined || call.hedgeAfterMs !== undefined) callPolicy(name, { timeout: call.timeout, retries: call.retries, hedgeAfterMs: call.hedgeAfterMs })
    // What the provider recommends for its tool stands in for the node's defaults.
    const hint = ctx.resolve(specs, key).ranked[0]?.tool.defaults
    let ms = call.timeout ?? timeout ?? hint?.timeoutMs ?? ctx.callTimeoutMs
    // Inside a tool handler: never outlive the caller that is waiting for it.
    const inbound = callScope.getStore()
    if (inbound?.deadlineAt !== undefined) {
      const left = inbound.deadlineAt - ctx.clock.now()
      if (left <= 0) throw failed(new MeshError('MESH_ERR_CALL_TIMEOUT', `the call through ${name} was not sent: the deadline of the call that made it has passed`, { details: { dependency: name, notSent: true } }))
      ms = Math.min(ms, left)
    }
    const deadlineAt = ctx.clock.now() + ms
    const limit = deadline(ctx.clock, ms, [call.signal, ctx.stopSignal, inbound?.signal])
    try {
      const traced = ctx.tracer === undefined ? undefined : startCallSpan(ctx.tracer, name, specs[0].capability, call.headers)
      const plan: Plan = {
        timeoutMs: ms,
        retries: call.retries ?? options.retries ?? hint?.retries ?? ctx.retry.retries,
        hedgeAfterMs: call.hedgeAfterMs ?? options.hedgeAfterMs ?? hint?.hedgeAfterMs ?? ctx.hedgeAfterMs,
        trace: traced?.ctx,
        attempts: 0,
      }
      const ended = ctx.events?.callEnded
      if (ended === undefined && traced === undefined) return await attempt(args, call, limit.signal, deadlineAt, inbound, plan)
      const started = deadlineAt - ms
      try {
        const done = await attempt(args, call, limit.signal, deadlineAt, inbound, plan)
        ended?.({ dependency: name, capability: specs[0].capability, agent: done.provider.agent, outcome: 'ok', ms: ctx.clock.now() - started })
        if (traced?.span.isRecording() === true) {
          traced.span.setAttributes({ 'mesh.peer.agent': done.provider.agent, 'mesh.attempts': plan.attempts })
          traced.span.end()
        }
        return done
      } catch (err) {
        const d = isMeshError(err) ? err.details : undefined
        const agent = (d?.provider as ProviderInfo | undefined)?.agent ?? (typeof d?.agent === 'string' ? d.agent : undefined)
        const code = isMeshError(err) ? err.code : 'OTHER'
        ended?.({ dependency: name, capability: specs[0].capability, agent, outcome: code, ms: ctx.clock.now() - started })
        if (traced !== undefined) {
          traced.span.setAttribute('mesh.attempts', plan.attempts)
          if (agent !== undefined) traced.span.setAttribute('mesh.peer.agent', agent)
          failSpan(traced.span, code, (err as Error).message)
        }
        throw err
      }
    } finally {
      limit.done()
    }
  }

  async function attempt (args: Record<string, unknown>, call: CallOptions, signal: AbortSignal, deadlineAt: number, inbound: CallScope | undefined, policy: Plan): Promise<{ result: R, provider: ProviderInfo }> {
    // A weighted split picks this call's branch (its own version or tags); otherwise the dependency's specs.
    const { specs, key } = route()
    /** Every failed attempt of this call, with its provider: the final error lists them. */
    const failures: MeshError[] = []
    /** Providers that failed this call: the next attempt goes to another one first. */
    const tried = new Set<string>()
    let retriesLeft = policy.retries
    let retried = 0
    let backoffDue = false
    /** Times this call waited for lost providers to come back, and until when it may. */
    let comebacks = 0
    let comebackUntil: number | undefined
    /** The longest wait a provider asked for when it refused a call for its rate limit. */
    let limitedWait = 0
    /** Partial results handed to the caller: after the first, a failure ends the call (STREAM_BROKEN). */
    let parts = 0
    const onPart = call.onPart === undefined ? undefined : (part: unknown): void | Promise<void> => { parts++; return call.onPart!(part) }
    // One turn of the round robin per call: the order is taken again only when the topology changed.
    const balance = options.balance ?? ctx.balance
    const session = call.session
    if (options.session === true && session === undefined) throw failed(new MeshError('MESH_ERR_RESOLVE_INVALID_SPEC', `${name} is a session dependency: pass the session key with each call ({ session: '...' })`, { details: { dependency: name } }))
    const pinned = (o: Candidate[]): Candidate[] => {
      try {
        return session === undefined ? o : pins.restrict(session, name, o)
      } catch (err) {
        throw failed(err)
      }
    }
    let order = pinned(ctx.order(ctx.resolve(specs, key), key, balance, options.locality))
    /** Providers left out for open circuits (at most the policy's share of them). */
    let out = ejectedOf(ctx.breakers, order)
    for (;;) {
      let c = order.find((x) => !tried.has(x.peerId) && !out.has(x.peerId))
      // Every provider failed once; a retry that is due goes round them again.
      if (c === undefined && backoffDue) {
        tried.clear()
        c = order.find((x) => !out.has(x.peerId))
      }
      if (c === undefined && limitedWait > 0 && retriesLeft > 0 && ctx.clock.now() + limitedWait < deadlineAt) {
        // Every provider refused for its rate limit: a retry waits as long as they asked.
        retriesLeft--
        ctx.stats.retries++
        backoffDue = true
        tried.clear()
        c = order.find((x) => !out.has(x.peerId))
      }
      if (c === undefined) {
        if (failures.length > 0 && comebacks < MAX_COMEBACKS && failures.every(wasLost) && ctx.clock.now() < (comebackUntil ??= ctx.clock.now() + COMEBACK_MS)) {
          // Every provider was lost with the call or unreachable, nothing ran to an answer: take
          // one that joined since, or wait a little (within the deadline) until the providers
          // change: one is back alive (a restart), or another joins.
          comebacks++
          const current = (): Candidate[] => ctx.order(ctx.resolve(specs, key), key, balance, options.locality)
          const fresh = current()
          if (fresh.some((x) => !tried.has(x.peerId) && x.liveness === 'alive')) order = fresh
          else {
            const wait = deadline(ctx.clock, comebackUntil - ctx.clock.now(), [signal])
            try {
              order = await changedOrder(fresh, wait.signal, current)
            } catch {
              if (signal.aborted) throw failed(timeoutOrAbort(signal, name, exhausted(name, specs[0].capability, failures)))
              throw failed(exhausted(name, specs[0].capability, failures))
            } finally {
              wait.done()
            }
          }
          order = pinned(order)
          out = ejectedOf(ctx.breakers, order)
          tried.clear()
          continue
        }
        if (failures.length > 0 && (order.length > 0 || comebacks > 0)) throw failed(exhausted(name, specs[0].capability, failures))
        if (out.size > 0) throw failed(circuitOpen(name, specs[0].capability, order.filter((x) => out.has(x.peerId)), ctx))
        // Withheld for a changed definition is a decision, not an absence: waiting would not help.
        const withheld = pinChanged(name, ctx.resolve(specs, key))
        if (withheld !== undefined) throw failed(withheld)
        if (ctx.clock.now() >= ctx.settleUntil() || signal.aborted) throw failed(noProvider(name, specs, ctx, signal, key))
        // Inside the settle window: wait for the topology to change (or the window to close).
        const waitFor = AbortSignal.any([signal, AbortSignal.timeout(Math.max(1, ctx.settleUntil() - ctx.clock.now()))])
        await ctx.nextChange(waitFor).catch(() => {})
        order = pinned(ctx.order(ctx.resolve(specs, key), key, balance, options.locality))
        out = ejectedOf(ctx.breakers, order)
        continue
      }
      if (backoffDue) {
        backoffDue = false
        await sleep(ctx.clock, Math.max(limitedWait, backoffDelay(++retried, options.retryDelayMs ?? ctx.retry.delayMs, options.retryMaxDelayMs ?? ctx.retry.maxDelayMs)), signal)
          .catch((err: unknown) => { throw failed(timeoutOrAbort(signal, name, err)) })
      }
      const self = ctx.selfPeerId()
      const local = c.peerId === self
      if (!local) {
        // Its circuit half-opened for another call's trial, or it has all the calls it may.
        const admitted = ctx.breakers.admit(c.peerId)
        if (admitted !== true) {
          tried.add(c.peerId)
          failures.push(admitted === 'busy'
            ? new MeshError('MESH_ERR_CALL_OVERLOADED', `${c.agent} was not called: this agent has ${ctx.breakers.policy.maxRequestsPerProvider} calls in flight to it (maxRequestsPerProvider)`, { details: { notSent: true, peerId: c.peerId, agent: c.agent } })
            : new MeshError('MESH_ERR_CALL_CIRCUIT_OPEN', `${c.agent} was not called: its circuit is open`, { details: { notSent: true, peerId: c.peerId, agent: c.agent } }))
          continue
        }
        ctx.breakers.start(c.peerId)
      }
      let outcome: 'ok' | 'failed' | 'neither' = 'ok'
      const sentAt = ctx.clock.now()
      // A provider the mesh gives up on while it has the call is not waited for until the timeout.
      const lost = local ? undefined : watchAttempt(ctx, c, signal)
      const send = (x: Candidate, s: AbortSignal, span: Span | undefined): Promise<CallToolResult> => {
        const headers = outboundHeaders(ctx, x, call.headers, inbound, deadlineAt - ctx.clock.now(), session)
        if (span !== undefined) injectInto(headers, span)
        return ctx.callRemote(x, args, { signal: s, headers, onProgress: call.onProgress, onPart, onLog: call.onLog, onRequest: call.onRequest })
      }
      const traced = traceAttempt(policy, c, local)
      /** Why this attempt failed (its span's status); undefined while it has not. */
      let attemptError: unknown
      // Hedged: safe to run twice, not pinned to a session, not streamed (the caller would get
      // both attempts' parts), not answering requests (its host would be asked twice), and
      // another provider may take it.
      const hedgeMs = local || session !== undefined || onPart !== undefined || call.onRequest !== undefined || !retrySafe(c.tool) ? undefined : policy.hedgeAfterMs
      let served = c
      try {
        let raw: CallToolResult
        if (local) {
          const run = (): Promise<CallToolResult> => ctx.callLocal(c.tool.name, args, signal, outboundHeaders(ctx, c, call.headers, inbound, undefined), onPart)
          raw = await (traced === undefined ? run() : withContext(attemptContext(policy.trace!, traced), run))
        } else if (hedgeMs === undefined) raw = await send(c, lost!.signal, traced)
        else {
          const h = await hedge(ctx.clock, hedgeMs, send(c, lost!.signal, traced), () => { lost!.cancel() }, () => spare(c, order, tried, out, self, send, signal, policy), (d, err) => {
            failures.push(attemptFailure(err, d))
          })
          raw = h.raw
          if (h.by !== undefined) {
            served = h.by
            ctx.stats.hedgesWon++
            outcome = h.firstError === undefined ? 'neither' : breakerOutcome(h.firstError, lost!.signal)
            attemptError = h.firstError ?? new MeshError('MESH_ERR_ABORTED', `cancelled: ${served.agent} answered first (hedging)`)
          }
        }
        const provider = providerInfo(served, local)
        const result = unwrap<R>(raw, name, provider, output, call.raw === true)
        if (session !== undefined) pins.pin(session, c)
        ctx.stats.ok++
        return { result, provider }
      } catch (err) {
        attemptError = err
        outcome = breakerOutcome(err, signal)
        if (signal.aborted) throw failed(isMeshError(err) && lost?.why === undefined ? err : timeoutOrAbort(signal, name, err))
        // The deadline has passed, and a failure got here before its timer ran: the provider gave
        // up at the budget it was sent (its handler's signal), and its handler's error is that.
        if (ctx.clock.now() >= deadlineAt) {
          outcome = 'failed' // as when the timer runs first: the provider took the whole budget
          throw failed(timedOut(name, timeoutReason(policy.timeoutMs), err))
        }
        const gone = lostReason(err, lost?.why)
        // The caller has parts of this answer: another attempt would repeat them. (Streaming calls
        // must likewise never be hedged.) A tool's own error after parts keeps its code.
        if (parts > 0 && (outcome === 'failed' || gone !== undefined)) throw failed(streamBroken(name, providerInfo(c, local), parts, gone, err))
        if (gone !== undefined && session !== undefined && pins.pinned(session)) throw failed(SessionPins.lost(session, name, c.agent, gone))
        // Refused before it ran (rate limited) is as good as not sent: another provider may take it.
        const limited = isMeshError(err) && err.code === 'MESH_ERR_CALL_RATE_LIMITED'
        if (limited) limitedWait = Math.max(limitedWait, Number((err as MeshError).details?.retryAfterMs ?? 0))
        const notSent = (isMeshError(err) && err.details?.notSent === true) || limited
        const retry = gone === undefined && !notSent && retrySafe(c.tool) && retriesLeft > 0 && retryable(err)
        if (gone === undefined && !notSent && !retry) {
          // The provider's own answer is the call's error, even after attempts that failed over to it.
          if (failures.length === 0 || isAnswer(err)) throw failed(err)
          failures.push(attemptFailure(err, c))
          throw failed(exhausted(name, specs[0].capability, failures))
        }
        if (gone !== undefined && !retrySafe(c.tool)) {
          throw failed(new MeshError('MESH_ERR_CALL_PROVIDER_LOST', `${gone}; ${c.tool.name} is neither read-only nor idempotent (annotations), so it was not sent to another provider: it may have run`, {
            cause: err, details: { dependency: name, provider: providerInfo(c, local), maybeRan: true },
          }))
        }
        if (retry) {
          // Sent, failed, safe to send again: after a backoff, to another provider first.
          retriesLeft--
          backoffDue = true
          ctx.stats.retries++
        } else {
          // Refused before anything ran there, or lost with a call that is safe to send again:
          // try it last for a while, and go to the next candidate at once.
          ctx.stats.failovers++
          ctx.refused(c)
        }
        tried.add(c.peerId)
        failures.push(attemptFailure(gone === undefined ? err : new MeshError('MESH_ERR_CALL_PROVIDER_LOST', gone, { cause: err }), c))
      } finally {
        if (traced !== undefined) endAttempt(traced, attemptError)
        lost?.done()
        if (!local) ctx.breakers.end(c.peerId, outcome, ctx.clock.now() - sentAt)
      }
    }
  }

  /** The span of the next attempt of a traced call, to `x`; undefined when the call is not traced. */
  function traceAttempt (plan: Plan, x: Candidate, local: boolean): Span | undefined {
    plan.attempts++
    if (plan.trace === undefined) return undefined
    return startAttemptSpan(ctx.tracer!, plan.trace, x, plan.attempts, local)
  }

  /** Resolves to the order once it differs from `before` (who provides, or their liveness); rejects when `signal` aborts. */
  async function changedOrder (before: Candidate[], signal: AbortSignal, current: () => Candidate[]): Promise<Candidate[]> {
    // Sorted: the order itself rotates from call to call.
    const state = (o: Candidate[]): string => o.map((x) => `${x.peerId}:${x.liveness}`).sort().join()
    const seen = state(before)
    for (;;) {
      await ctx.nextChange(signal)
      const now = current()
      if (state(now) !== seen) return now
    }
  }

  /**
   * The hedge of a slow attempt to `c`: the next provider in `order` this call has not tried,
   * whose circuit admits it and whose tool is safe to run twice; undefined when there is none.
   */
  function spare (c: Candidate, order: Candidate[], tried: Set<string>, out: ReadonlySet<string>, self: string, send: (x: Candidate, s: AbortSignal, span: Span | undefined) => Promise<CallToolResult>, signal: AbortSignal, plan: Plan): Spare | undefined {
    const d = order.find((x) => x.peerId !== c.peerId && x.peerId !== self && !tried.has(x.peerId) && !out.has(x.peerId) && retrySafe(x.tool) && ctx.breakers.admit(x.peerId) === true)
    if (d === undefined) return undefined
    tried.add(d.peerId)
    ctx.breakers.start(d.peerId)
    ctx.stats.hedges++
    const at = ctx.clock.now()
    const w = watchAttempt(ctx, d, signal)
    const traced = traceAttempt(plan, d, false)
    const result = send(d, w.signal, traced)
    const end = (outcome: 'ok' | 'failed' | 'neither', err?: unknown): void => {
      w.done()
      ctx.breakers.end(d.peerId, outcome, ctx.clock.now() - at)
      if (traced !== undefined) endAttempt(traced, err)
    }
    result.then(() => { end('ok') }, (err: unknown) => { end(breakerOutcome(err, w.signal), err) })
    return { c: d, result, cancel: () => { w.cancel() } }
  }

  const tool = (async (args?: Record<string, unknown>, call?: CallOptions) => (await invoke(args, call)).result) as MeshTool<R>
  Object.defineProperties(tool, {
    invoke: { value: invoke },
    stream: { value: (args?: Record<string, unknown>, call?: Omit<CallOptions, 'onPart' | 'raw'>) => meshStream<R>(invoke, args, call) },
    available: { get: () => ctx.resolve(specs, key).ranked.length > 0 },
    capability: { value: specs[0].capability },
    resolve: { value: () => ctx.resolve(specs, key) },
    endSession: { value: (session: string) => { pins.end(session) } },
    name: { value: name },
  })
  return tool
}
