import type { CallToolResult } from '@modelcontextprotocol/sdk/types.js'
import { z } from 'zod'
import { ErrorCodes, MESH_ERROR_META_KEY, MeshError, isMeshError } from '../errors.ts'
import type { ErrorCode } from '../errors.ts'
import type { Clock } from '../clock.ts'
import { describeSpec, normalizeDependency, TagExpressionSchema } from '../topology/dependency.ts'
import type { DependencySpec, ResolutionSpec } from '../topology/dependency.ts'
import type { Candidate, Resolution } from '../topology/resolver.ts'
import { retrySafe } from '../topology/advert.ts'
import type { Progress } from './mcp-client.ts'
import { deadline } from './deadline.ts'
import { callScope, SESSION_HEADER, TIMEOUT_HEADER } from './call-scope.ts'
import type { CallScope } from './call-scope.ts'
import { pickHeaders } from './headers.ts'
import type { HeaderFilter } from './headers.ts'
import { parseSpiffeId } from '../identity/spiffe-id.ts'
import type { Breakers } from './breaker.ts'
import { SessionPins } from './sessions.ts'
import { printable } from './answer.ts'

/**
 * How a caller spreads calls among equally ranked providers: `round-robin` (the default), or
 * `least-outstanding` (the one with the fewest calls in flight from this caller), or `p2c` (the
 * better of two drawn at random, by answer time times calls in flight).
 */
export type Balance = 'round-robin' | 'least-outstanding' | 'p2c'

/**
 * Retries of calls that failed after sending (the connection, a 5xx), for read-only or idempotent
 * tools only (MCP annotations), each after a backoff with full jitter and to another provider
 * first. Failures before sending, and providers lost mid-call, go to the next provider at once
 * and do not count.
 */
export interface RetryPolicy {
  /** How many times a call may be sent again (default 0). */
  retries: number
  /** The first backoff step, in ms (default 100, as MCP Mesh's `retryDelay`); it doubles each retry. */
  delayMs: number
  /** The longest step, in ms (default 2,000). */
  maxDelayMs: number
}

/** Retry options as a dependency declares them (each overrides the node's default). */
export interface RetryPolicyInput {
  retries: number
  retryDelayMs: number
  retryMaxDelayMs: number
}

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
  /** Timeout of one call through this dependency, in ms (default: the node's `callTimeoutMs`). */
  timeout?: number
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
  /** The session key (a dependency declared with `session: true`): the session's calls stay on one provider. */
  session?: string
  headers?: Record<string, string>
  onProgress?: (p: Progress) => void
}

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
  (args?: Record<string, unknown>, options?: CallOptions): Promise<R>
  /** The same call, also saying which provider served it. */
  invoke(args?: Record<string, unknown>, options?: CallOptions): Promise<{ result: R, provider: ProviderInfo }>
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
  order: (resolution: Resolution, key: string, balance?: Balance) => Candidate[]
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
  /** The node's default balance. */
  balance: Balance
  /** This caller's circuit breakers and calls in flight, per provider. */
  breakers: Breakers
  /** Which headers calls carry: the node's list, and each partner domain's (with mutual TLS: our own `trustDomain`). */
  headers: { filter: HeaderFilter, partner: (trustDomain: string) => HeaderFilter, trustDomain?: string }
  /** Aborts every call (the node is stopping). */
  stopSignal: AbortSignal
  callRemote: (c: Candidate, args: unknown, options: { signal: AbortSignal, headers?: Record<string, string>, onProgress?: (p: Progress) => void }) => Promise<CallToolResult>
  /** Runs one of this agent's tools in process; `headers` are what a remote call would carry. */
  callLocal: (tool: string, args: unknown, signal: AbortSignal, headers?: Record<string, string>) => Promise<CallToolResult>
  /** Capabilities offered in the mesh now (for NO_PROVIDER messages). */
  offered: () => string[]
  /** Counters of this caller's calls (`node.stats`). */
  stats: CallStats
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
    if (call.timeout !== undefined || call.retries !== undefined) callPolicy(name, { timeout: call.timeout, retries: call.retries })
    let ms = call.timeout ?? timeout ?? ctx.callTimeoutMs
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
      return await attempt(args, call, limit.signal, deadlineAt, inbound)
    } finally {
      limit.done()
    }
  }

  async function attempt (args: Record<string, unknown>, call: CallOptions, signal: AbortSignal, deadlineAt: number, inbound: CallScope | undefined): Promise<{ result: R, provider: ProviderInfo }> {
    // A weighted split picks this call's branch (its own version or tags); otherwise the dependency's specs.
    const { specs, key } = route()
    /** Every failed attempt of this call, with its provider: the final error lists them. */
    const failures: MeshError[] = []
    /** Providers that failed this call: the next attempt goes to another one first. */
    const tried = new Set<string>()
    let retriesLeft = call.retries ?? options.retries ?? ctx.retry.retries
    let retried = 0
    let backoffDue = false
    /** The longest wait a provider asked for when it refused a call for its rate limit. */
    let limitedWait = 0
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
    let order = pinned(ctx.order(ctx.resolve(specs, key), key, balance))
    /** Providers left out for open circuits (at most the policy's share of them). */
    let out = ctx.breakers.ejected(order.map((x) => x.peerId))
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
        if (failures.length > 0 && order.length > 0) throw failed(exhausted(name, specs[0].capability, failures))
        if (out.size > 0) throw failed(circuitOpen(name, specs[0].capability, order.filter((x) => out.has(x.peerId)), ctx))
        if (ctx.clock.now() >= ctx.settleUntil() || signal.aborted) throw failed(noProvider(name, specs, ctx, signal, key))
        // Inside the settle window: wait for the topology to change (or the window to close).
        const waitFor = AbortSignal.any([signal, AbortSignal.timeout(Math.max(1, ctx.settleUntil() - ctx.clock.now()))])
        await ctx.nextChange(waitFor).catch(() => {})
        order = pinned(ctx.order(ctx.resolve(specs, key), key, balance))
        out = ctx.breakers.ejected(order.map((x) => x.peerId))
        continue
      }
      if (backoffDue) {
        backoffDue = false
        await sleep(ctx.clock, Math.max(limitedWait, backoffDelay(++retried, options.retryDelayMs ?? ctx.retry.delayMs, options.retryMaxDelayMs ?? ctx.retry.maxDelayMs)), signal)
          .catch((err: unknown) => { throw failed(timeoutOrAbort(signal, name, err)) })
      }
      const local = c.peerId === ctx.selfPeerId()
      const provider: ProviderInfo = { agent: c.agent, peerId: c.peerId, tool: c.tool.name, local, ...(c.endpoint === undefined ? {} : { endpoint: c.endpoint }) }
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
      try {
        const raw = local
          ? await ctx.callLocal(c.tool.name, args, signal, outboundHeaders(ctx, c, call.headers, inbound, undefined))
          : await ctx.callRemote(c, args, { signal: lost!.signal, headers: outboundHeaders(ctx, c, call.headers, inbound, deadlineAt - ctx.clock.now(), session), onProgress: call.onProgress })
        const result = unwrap<R>(raw, name, provider, output)
        if (session !== undefined) pins.pin(session, c)
        ctx.stats.ok++
        return { result, provider }
      } catch (err) {
        outcome = breakerOutcome(err, signal)
        if (signal.aborted) throw failed(isMeshError(err) && lost?.why === undefined ? err : timeoutOrAbort(signal, name, err))
        const gone = lostReason(err, lost?.why)
        if (gone !== undefined && session !== undefined && pins.pinned(session)) throw failed(SessionPins.lost(session, name, c.agent, gone))
        // Refused before it ran (rate limited) is as good as not sent: another provider may take it.
        const limited = isMeshError(err) && err.code === 'MESH_ERR_CALL_RATE_LIMITED'
        if (limited) limitedWait = Math.max(limitedWait, Number((err as MeshError).details?.retryAfterMs ?? 0))
        const notSent = (isMeshError(err) && err.details?.notSent === true) || limited
        const retry = gone === undefined && !notSent && retrySafe(c.tool) && retriesLeft > 0 && retryable(err)
        if (gone === undefined && !notSent && !retry) {
          if (failures.length === 0) throw failed(err)
          failures.push(new MeshError((err as MeshError).code ?? 'MESH_ERR_CALL_FAILED', (err as Error).message, { cause: err, details: { ...(err as MeshError).details, peerId: c.peerId, agent: c.agent } }))
          throw failed(exhausted(name, specs[0].capability, failures))
        }
        if (gone !== undefined && !retrySafe(c.tool)) {
          throw failed(new MeshError('MESH_ERR_CALL_PROVIDER_LOST', `${gone}; ${c.tool.name} is neither read-only nor idempotent (annotations), so it was not sent to another provider: it may have run`, {
            cause: err, details: { dependency: name, provider, maybeRan: true },
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
        const e = gone === undefined ? err as MeshError : new MeshError('MESH_ERR_CALL_PROVIDER_LOST', gone, { cause: err })
        failures.push(new MeshError(e.code, e.message, { cause: e, details: { ...e.details, peerId: c.peerId, agent: c.agent } }))
      } finally {
        lost?.done()
        if (!local) ctx.breakers.end(c.peerId, outcome, ctx.clock.now() - sentAt)
      }
    }
  }

  const tool = (async (args?: Record<string, unknown>, call?: CallOptions) => (await invoke(args, call)).result) as MeshTool<R>
  Object.defineProperties(tool, {
    invoke: { value: invoke },
    available: { get: () => ctx.resolve(specs, key).ranked.length > 0 },
    capability: { value: specs[0].capability },
    resolve: { value: () => ctx.resolve(specs, key) },
    endSession: { value: (session: string) => { pins.end(session) } },
    name: { value: name },
  })
  return tool
}

/** Turns a tool result into what the caller gets: structured content, else content; errors thrown. */
function unwrap<R> (r: CallToolResult, dependency: string, provider: ProviderInfo, output: z.ZodType | undefined): R {
  if (r.isError === true) throw toolError(r, dependency, provider)
  const value = r.structuredContent ?? r.content
  if (output === undefined) return value as R
  const checked = output.safeParse(value)
  if (!checked.success) {
    throw new MeshError('MESH_ERR_CALL_FAILED', `${provider.agent}/${provider.tool} returned a result that does not match the declared output of ${dependency}`, {
      details: { provider, issues: checked.error.issues },
    })
  }
  return checked.data as R
}

/**
 * Codes only this side raises: about the transport or the choice of provider. A provider that
 * puts one in a result is not believed (it ran the call, so none of them is true).
 */
const CALLER_CODES: ReadonlySet<string> = new Set(['MESH_ERR_CALL_SESSION_LOST', 'MESH_ERR_CALL_NO_PROVIDER', 'MESH_ERR_CALL_TIMEOUT', 'MESH_ERR_CALL_UNREACHABLE', 'MESH_ERR_CALL_FAILED', 'MESH_ERR_CALL_UNTRUSTED', 'MESH_ERR_CALL_PROVIDER_LOST', 'MESH_ERR_CALL_CIRCUIT_OPEN', 'MESH_ERR_CALL_OVERLOADED'])

/**
 * The error for an `isError` result. Its class travels as data, never read from the text: a mesh
 * endpoint puts the code of what it detected under `_meta[MESH_ERROR_META_KEY]`
 * (`MESH_ERR_CALL_INVALID_ARGS` with `issues` when the arguments failed the input schema). Any
 * `MESH_ERR_CALL_*` code is taken but the caller's own; any other result is the tool's own error.
 */
function toolError (r: CallToolResult, dependency: string, provider: ProviderInfo): MeshError {
  const text = r.content.map((c) => (c.type === 'text' ? c.text : '')).join('\n')
  const meta: unknown = r._meta?.[MESH_ERROR_META_KEY]
  const m = typeof meta === 'object' && meta !== null ? meta as { code?: unknown, issues?: unknown } : {}
  const code: ErrorCode = typeof m.code === 'string' && m.code.startsWith('MESH_ERR_CALL_') && Object.hasOwn(ErrorCodes, m.code) && !CALLER_CODES.has(m.code)
    ? m.code as ErrorCode
    : 'MESH_ERR_CALL_TOOL_ERROR'
  return new MeshError(code, `${provider.agent}/${provider.tool} (for ${dependency}): ${printable(text, 1_000)}`, {
    details: {
      provider,
      content: r.content,
      ...(Array.isArray(m.issues) ? { issues: m.issues } : {}),
      ...(typeof (m as { retryAfterMs?: unknown }).retryAfterMs === 'number' ? { retryAfterMs: (m as { retryAfterMs: number }).retryAfterMs } : {}),
      ...(code === 'MESH_ERR_CALL_INVALID_ARGS' ? { validation: text } : {}),
    },
  })
}

/**
 * What one attempt sends: the propagated inbound headers, then the call's own (both by the
 * node's list; a partner's agent gets only what is allowed for its domain), and the budget left,
 * so the provider (and its own calls) stop when we do.
 */
function outboundHeaders (ctx: MeshToolContext, c: Candidate, own: Record<string, string> | undefined, inbound: CallScope | undefined, left: number | undefined, session?: string): Record<string, string> {
  const h = ctx.headers
  let out: Record<string, string> = own === undefined ? { ...inbound?.headers } : { ...inbound?.headers, ...pickHeaders(own, h.filter) }
  const domain = h.trustDomain === undefined || c.identity === undefined ? undefined : parseSpiffeId(c.identity.spiffeId).trustDomain
  if (domain !== undefined && domain !== h.trustDomain) out = pickHeaders(out, h.partner(domain)) ?? {}
  if (left !== undefined) out[TIMEOUT_HEADER] = String(Math.max(1, Math.floor(left)))
  if (session !== undefined) out[SESSION_HEADER] = session // the provider keeps the session's state by it
  return out
}

const CallPolicySchema = z.object({
  timeout: z.number().int().positive().optional(),
  retries: z.number().int().min(0).max(10).optional(),
  retryDelayMs: z.number().int().min(0).optional(),
  retryMaxDelayMs: z.number().int().min(0).optional(),
  balance: z.enum(['round-robin', 'least-outstanding', 'p2c']).optional(),
  session: z.boolean().optional(),
  split: z.array(z.object({
    weight: z.number().positive().max(1_000_000),
    version: z.string().max(64).optional(),
    tags: TagExpressionSchema.optional(),
  }).strict()).min(1).max(8).optional(),
})

/** A dependency's (or a call's) options, checked once: MESH_ERR_RESOLVE_INVALID_SPEC says which is wrong. */
function callPolicy (name: string, o: Record<string, unknown>): z.infer<typeof CallPolicySchema> & { output?: z.ZodType } {
  const parsed = CallPolicySchema.safeParse(o)
  if (!parsed.success) throw new MeshError('MESH_ERR_RESOLVE_INVALID_SPEC', `invalid call options of ${name}: ${z.prettifyError(parsed.error)}`, { details: { issues: parsed.error.issues } })
  return { ...parsed.data, ...(o.output === undefined ? {} : { output: o.output as z.ZodType }) }
}

/** Whether a failed attempt counts against its provider's circuit: a broken answer or none, not the tool's own error. */
function breakerOutcome (err: unknown, signal: AbortSignal): 'failed' | 'neither' | 'ok' {
  if (signal.aborted) return (signal.reason as { name?: string } | undefined)?.name === 'TimeoutError' ? 'failed' : 'neither'
  if (!isMeshError(err)) return 'neither'
  switch (err.code) {
    case 'MESH_ERR_CALL_FAILED':
    case 'MESH_ERR_CALL_UNREACHABLE':
    case 'MESH_ERR_CALL_PROVIDER_LOST':
    case 'MESH_ERR_CALL_TIMEOUT':
    case 'MESH_ERR_ABORTED': // our watch aborted it: the provider was lost
      return 'failed'
    case 'MESH_ERR_SERVER_BUSY':
    case 'MESH_ERR_SERVER_DRAINING':
    case 'MESH_ERR_CALL_UNTRUSTED':
      return 'neither'
    default:
      return 'ok' // an answer: the tool's error, bad arguments, not authorized
  }
}

/** Every provider of a dependency is left out for an open circuit: say when the first one half-opens. */
function circuitOpen (name: string, capability: string, open: Candidate[], ctx: MeshToolContext): MeshError {
  const next = Math.min(...open.map((c) => ctx.breakers.opensAt(c.peerId) ?? ctx.clock.now()))
  const wait = Math.max(0, next - ctx.clock.now())
  return new MeshError('MESH_ERR_CALL_CIRCUIT_OPEN', `no call of ${name} (${capability}) was sent: the circuit of every provider is open (${open.map((c) => c.agent).join(', ')}: ${ctx.breakers.policy.consecutiveFailures} failures in a row); a trial call goes through in ${Math.ceil(wait / 1000)} s`, {
    details: { dependency: name, notSent: true, providers: open.map((c) => c.agent), retryAfterMs: wait },
  })
}

/**
 * The route of each call: the dependency's specs, or with `split`, one branch per call (the
 * first spec with the branch's version or tags), chosen by smooth weighted round robin among the
 * branches that have a provider now, so 1,000 calls at 90/10 land exactly 900 and 100. With no
 * branch resolvable, the dependency's own specs (which may wait for a provider, or say why none).
 */
function splitRoute (name: string, specs: ResolutionSpec[], key: string, split: Array<{ weight: number, version?: string, tags?: ResolutionSpec['tags'] }> | undefined, ctx: MeshToolContext): () => { specs: ResolutionSpec[], key: string } {
  const base = { specs, key }
  if (split === undefined) return () => base
  const branches = split.map(({ weight, ...pick }) => {
    let branch: ResolutionSpec[]
    try {
      branch = normalizeDependency({ ...specs[0], ...pick })
    } catch (err) {
      throw new MeshError('MESH_ERR_RESOLVE_INVALID_SPEC', `invalid split of ${name}: ${(err as Error).message}`, { cause: err })
    }
    return { weight, current: 0, specs: branch, key: JSON.stringify(branch) }
  })
  return () => {
    const live = branches.filter((b) => ctx.resolve(b.specs, b.key).ranked.length > 0)
    if (live.length === 0) return base
    const total = live.reduce((sum, b) => sum + b.weight, 0)
    let best = live[0]
    for (const b of live) {
      b.current += b.weight
      if (b.current > best.current) best = b
    }
    best.current -= total
    return best
  }
}

/** Why every attempt failed, in one error: the code says what kind of failure it was. */
function exhausted (name: string, capability: string, failures: MeshError[]): MeshError {
  // Refused for identity alone: say so, as no retry elsewhere will change it.
  const same = failures.every((e) => e.code === failures[0].code) ? failures[0].code : undefined
  const code = same === 'MESH_ERR_CALL_UNTRUSTED' || same === 'MESH_ERR_CALL_CIRCUIT_OPEN' || same === 'MESH_ERR_CALL_OVERLOADED' || same === 'MESH_ERR_CALL_RATE_LIMITED'
    ? same
    : failures.some((e) => e.code === 'MESH_ERR_CALL_FAILED')
      ? 'MESH_ERR_CALL_FAILED'
      : failures.some((e) => e.code === 'MESH_ERR_CALL_PROVIDER_LOST') ? 'MESH_ERR_CALL_PROVIDER_LOST' : 'MESH_ERR_CALL_UNREACHABLE'
  const list = failures.map((e, i) => `attempt ${i + 1} (${String(e.details?.agent)}): ${e.message}`).join('; ')
  return new MeshError(code, `every attempt of ${name} (${capability}) failed: ${list}`, {
    details: {
      dependency: name,
      attempts: failures.map((e) => ({ code: e.code, ...e.details })),
      ...(code === 'MESH_ERR_CALL_RATE_LIMITED' ? { retryAfterMs: Math.min(...failures.map((e) => Number(e.details?.retryAfterMs ?? 0))) } : {}),
    },
  })
}

/** A failure after sending that another attempt may not meet: the connection, or a 5xx. */
function retryable (err: unknown): boolean {
  if (!isMeshError(err) || err.code !== 'MESH_ERR_CALL_FAILED' || err.details?.malformed !== undefined) return false
  const status = err.details?.status
  return typeof status !== 'number' || status >= 500
}

/** Full jitter (AWS's): a delay drawn between 0 and the capped exponential step. */
function backoffDelay (retry: number, baseMs: number, maxMs: number): number {
  return Math.random() * Math.min(maxMs, baseMs * 2 ** (retry - 1))
}

/** Waits `ms` on the clock; rejects with the signal's reason when it aborts first. */
async function sleep (clock: Clock, ms: number, signal: AbortSignal): Promise<void> {
  signal.throwIfAborted()
  await new Promise<void>((resolve, reject) => {
    const onAbort = (): void => { clock.clearTimeout(timer); reject(signal.reason) }
    const timer = clock.setTimeout(() => { signal.removeEventListener('abort', onAbort); resolve() }, ms)
    signal.addEventListener('abort', onAbort, { once: true })
  })
}

/** Connection errors after sending that mean the provider went away (not an answer it gave). */
const DROPPED = new Set(['ECONNRESET', 'EPIPE', 'ECONNABORTED'])

/** One attempt's signal: the call's, and the provider's loss (its `why`), until `done()`. */
interface Attempt { signal: AbortSignal, why?: string, done(): void }

/** Watches `c` for one attempt: linked by hand, as `AbortSignal.any` costs more on the hot path. */
function watchAttempt (ctx: MeshToolContext, c: Candidate, signal: AbortSignal): Attempt {
  const ctl = new AbortController()
  const follow = (): void => { ctl.abort(signal.reason) }
  if (signal.aborted) follow()
  else signal.addEventListener('abort', follow, { once: true })
  const a: Attempt = {
    signal: ctl.signal,
    done: () => { unwatch(); signal.removeEventListener('abort', follow) },
  }
  const unwatch = ctx.watch(c.peerId, (why) => {
    a.why = `${c.agent} was ${why} while it had the call`
    ctl.abort(new MeshError('MESH_ERR_CALL_PROVIDER_LOST', a.why))
  })
  return a
}

/** Why the provider was lost with the call, or undefined when the failure is something else. */
function lostReason (err: unknown, lostWhy: string | undefined): string | undefined {
  if (lostWhy !== undefined) return lostWhy
  if (isMeshError(err) && err.code === 'MESH_ERR_CALL_FAILED' && DROPPED.has(String(err.details?.errno))) return `its connection dropped with the call (${String(err.details?.errno)})`
  return undefined
}

function timeoutOrAbort (signal: AbortSignal, name: string, cause: unknown): MeshError {
  const reason: unknown = signal.reason
  return reason instanceof DOMException && reason.name === 'TimeoutError'
    ? new MeshError('MESH_ERR_CALL_TIMEOUT', `the call through ${name} timed out`, { cause })
    : new MeshError('MESH_ERR_ABORTED', `the call through ${name} was aborted`, { cause: reason ?? cause })
}

function noProvider (name: string, specs: ResolutionSpec[], ctx: MeshToolContext, signal: AbortSignal, key: string): MeshError {
  if (signal.aborted) return timeoutOrAbort(signal, name, undefined)
  const offered = ctx.offered()
  const wanted = specs.map(describeSpec).join('; then ')
  const similar = offered.filter((c) => specs.some((s) => c === s.capability))
  // The first provider turned down, and why (a version, a tag, a trust domain), as explain says it.
  const first = ctx.resolve(specs, key).explanation.find((row) => row.verdict === 'rejected' && row.reasons.length > 0)
  const hint = similar.length > 0
    ? `the mesh offers ${specs[0].capability}, but no live provider qualifies${first === undefined ? '' : ` (${first.agent}: ${first.reasons.join('; ')})`} (see meshctl explain ${specs[0].capability})`
    : offered.length > 0 ? `the mesh offers: ${offered.join(', ')}` : 'the mesh offers no capabilities yet'
  return new MeshError('MESH_ERR_CALL_NO_PROVIDER', `no provider for ${name}: wanted ${wanted}; ${hint}`, {
    details: { dependency: name, capability: specs[0].capability, specs, offered },
  })
}
