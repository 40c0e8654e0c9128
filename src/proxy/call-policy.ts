// How a call through an injected tool is sent: its options (checked once), the branch of a
// weighted split, the headers of each attempt, the watch on its provider, and the backoff between
// retries.
import { z } from 'zod'
import type { Clock } from '../clock.ts'
import { MeshError } from '../errors.ts'
import { parseSpiffeId } from '../identity/spiffe-id.ts'
import { normalizeDependency, TagExpressionSchema } from '../topology/dependency.ts'
import type { ResolutionSpec } from '../topology/dependency.ts'
import type { Candidate } from '../topology/resolver.ts'
import { SESSION_HEADER, TIMEOUT_HEADER } from './call-scope.ts'
import type { CallScope } from './call-scope.ts'
import { pickHeaders } from './headers.ts'
import { OwnedSignal, followAbort, unfollowAbort } from './deadline.ts'
import type { MeshToolContext } from './mesh-tool.ts'
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
 * What one attempt sends: the propagated inbound headers, then the call's own (both by the
 * node's list; a partner's agent gets only what is allowed for its domain), and the budget left,
 * so the provider (and its own calls) stop when we do.
 */
export function outboundHeaders (ctx: MeshToolContext, c: Candidate, own: Record<string, string> | undefined, inbound: CallScope | undefined, left: number | undefined, session?: string): Record<string, string> {
  const h = ctx.headers
  let out: Record<string, string> = own === undefined ? { ...inbound?.headers } : { ...inbound?.headers, ...pickHeaders(own, h.filter) }
  const domain = h.trustDomain === undefined || c.identity === undefined ? undefined : parseSpiffeId(c.identity.spiffeId).trustDomain
  if (domain !== undefined && domain !== h.trustDomain) out = pickHeaders(out, h.partner(domain)) ?? {}
  if (left !== undefined) out[TIMEOUT_HEADER] = String(Math.max(1, Math.floor(left)))
  if (session !== undefined) out[SESSION_HEADER] = session // the provider keeps the session's state by it
  return out
}

export const CallPolicySchema = z.object({
  timeout: z.number().int().positive().optional(),
  retries: z.number().int().min(0).max(10).optional(),
  retryDelayMs: z.number().int().min(0).optional(),
  retryMaxDelayMs: z.number().int().min(0).optional(),
  hedgeAfterMs: z.number().int().positive().optional(),
  locality: z.boolean().optional(),
  balance: z.enum(['round-robin', 'least-outstanding', 'p2c']).optional(),
  session: z.boolean().optional(),
  split: z.array(z.object({
    weight: z.number().positive().max(1_000_000),
    version: z.string().max(64).optional(),
    tags: TagExpressionSchema.optional(),
  }).strict()).min(1).max(8).optional(),
})

/** A dependency's (or a call's) options, checked once: MESH_ERR_RESOLVE_INVALID_SPEC says which is wrong. */
export function callPolicy (name: string, o: Record<string, unknown>): z.infer<typeof CallPolicySchema> & { output?: z.ZodType } {
  const parsed = CallPolicySchema.safeParse(o)
  if (!parsed.success) throw new MeshError('MESH_ERR_RESOLVE_INVALID_SPEC', `invalid call options of ${name}: ${z.prettifyError(parsed.error)}`, { details: { issues: parsed.error.issues } })
  return { ...parsed.data, ...(o.output === undefined ? {} : { output: o.output as z.ZodType }) }
}

/**
 * The route of each call: the dependency's specs, or with `split`, one branch per call (the
 * first spec with the branch's version or tags), chosen by smooth weighted round robin among the
 * branches that have a provider now, so 1,000 calls at 90/10 land exactly 900 and 100. With no
 * branch resolvable, the dependency's own specs (which may wait for a provider, or say why none).
 */
export function splitRoute (name: string, specs: ResolutionSpec[], key: string, split: Array<{ weight: number, version?: string, tags?: ResolutionSpec['tags'] }> | undefined, ctx: MeshToolContext): () => { specs: ResolutionSpec[], key: string } {
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

/** Full jitter (AWS's): a delay drawn between 0 and the capped exponential step. */
export function backoffDelay (retry: number, baseMs: number, maxMs: number): number {
  return Math.random() * Math.min(maxMs, baseMs * 2 ** (retry - 1))
}

/** Waits `ms` on the clock; rejects with the signal's reason when it aborts first. */
export async function sleep (clock: Clock, ms: number, signal: AbortSignal): Promise<void> {
  signal.throwIfAborted()
  await new Promise<void>((resolve, reject) => {
    const onAbort = (): void => { clock.clearTimeout(timer); reject(signal.reason) }
    const timer = clock.setTimeout(() => { signal.removeEventListener('abort', onAbort); resolve() }, ms)
    signal.addEventListener('abort', onAbort, { once: true })
  })
}

/** One attempt's signal: the call's, and the provider's loss (its `why`), until `done()`; `cancel()` ends it (a hedge answered first). */
export interface Attempt { signal: AbortSignal, why?: string, done(): void, cancel(): void }

/**
 * Watches `c` for one attempt: linked by hand, as `AbortSignal.any` costs more on the hot path,
 * and as one object that is its signal's listener (`handleEvent`), so no closures per attempt.
 */
export function watchAttempt (ctx: MeshToolContext, c: Candidate, signal: AbortSignal): Attempt {
  return new Watched(ctx, c, signal)
}

class Watched extends OwnedSignal implements Attempt {
  why?: string
  readonly #c: Candidate
  readonly #signal: AbortSignal
  readonly #unwatch: () => void

  constructor (ctx: MeshToolContext, c: Candidate, signal: AbortSignal) {
    super()
    this.#c = c
    this.#signal = signal
    if (signal.aborted) this.abortWith(signal.reason)
    else followAbort(signal, this)
    this.#unwatch = ctx.watch(c.peerId, (why) => {
      this.why = `${c.agent} was ${why} while it had the call`
      this.abortWith(new MeshError('MESH_ERR_CALL_PROVIDER_LOST', this.why))
    })
  }

  /** The call's signal aborted. */
  handleEvent (): void {
    this.abortWith(this.#signal.reason)
  }

  done (): void {
    this.#unwatch()
    unfollowAbort(this.#signal, this)
  }

  cancel (): void {
    this.abortWith(new MeshError('MESH_ERR_ABORTED', `the call to ${this.#c.agent} was cancelled: another provider answered first (hedging)`))
  }
}
