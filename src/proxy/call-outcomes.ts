// What a call's answer or failure means: the result the caller gets, the error it throws (with
// its code), whether the provider is to blame (circuit breaking), and whether another attempt may
// help (retries, a provider lost mid-call).
import type { CallToolResult } from '@modelcontextprotocol/sdk/types.js'
import type { z } from 'zod'
import { ErrorCodes, MESH_ERROR_META_KEY, MeshError, isMeshError } from '../errors.ts'
import type { ErrorCode } from '../errors.ts'
import { describeSpec } from '../topology/dependency.ts'
import type { ResolutionSpec } from '../topology/dependency.ts'
import type { Candidate, Resolution } from '../topology/resolver.ts'
import { shortDigest } from '../topology/pins.ts'
import { printable } from './answer.ts'
import { timedOutAfter } from './deadline.ts'
import type { MeshToolContext, ProviderInfo } from './mesh-tool.ts'
/**
 * Turns a tool result into what the caller gets: structured content, else content (checked
 * against `output`), or with `whole` the result itself; errors thrown.
 */
export function unwrap<R> (r: CallToolResult, dependency: string, provider: ProviderInfo, output: z.ZodType | undefined, whole = false): R {
  if (r.isError === true) throw toolError(r, dependency, provider)
  if (whole) return r as R
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
export const CALLER_CODES: ReadonlySet<string> = new Set(['MESH_ERR_CALL_SESSION_LOST', 'MESH_ERR_CALL_NO_PROVIDER', 'MESH_ERR_CALL_TIMEOUT', 'MESH_ERR_CALL_UNREACHABLE', 'MESH_ERR_CALL_FAILED', 'MESH_ERR_CALL_UNTRUSTED', 'MESH_ERR_CALL_PROVIDER_LOST', 'MESH_ERR_CALL_CIRCUIT_OPEN', 'MESH_ERR_CALL_OVERLOADED', 'MESH_ERR_CALL_STREAM_BROKEN'])

/**
 * Whether a failure is the answer of the provider that took the call (its tool's error, the
 * arguments it refused, a code of the provider's side): the call's outcome, whatever attempts
 * failed over to that provider before (those are about the transport, not about the call).
 */
export function isAnswer (err: unknown): boolean {
  return isMeshError(err) && err.code.startsWith('MESH_ERR_CALL_') && !CALLER_CODES.has(err.code)
}

/**
 * The error for an `isError` result. Its class travels as data, never read from the text: a mesh
 * endpoint puts the code of what it detected under `_meta[MESH_ERROR_META_KEY]`
 * (`MESH_ERR_CALL_INVALID_ARGS` with `issues` when the arguments failed the input schema). Any
 * `MESH_ERR_CALL_*` code is taken but the caller's own; any other result is the tool's own error.
 */
export function toolError (r: CallToolResult, dependency: string, provider: ProviderInfo): MeshError {
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

/** Whether a failed attempt counts against its provider's circuit: a broken answer or none, not the tool's own error. */
export function breakerOutcome (err: unknown, signal: AbortSignal): 'failed' | 'neither' | 'ok' {
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
export function circuitOpen (name: string, capability: string, open: Candidate[], ctx: MeshToolContext): MeshError {
  const next = Math.min(...open.map((c) => ctx.breakers.opensAt(c.peerId) ?? ctx.clock.now()))
  const wait = Math.max(0, next - ctx.clock.now())
  return new MeshError('MESH_ERR_CALL_CIRCUIT_OPEN', `no call of ${name} (${capability}) was sent: the circuit of every provider is open (${open.map((c) => c.agent).join(', ')}: ${ctx.breakers.policy.consecutiveFailures} failures in a row); a trial call goes through in ${Math.ceil(wait / 1000)} s`, {
    details: { dependency: name, notSent: true, providers: open.map((c) => c.agent), retryAfterMs: wait },
  })
}

/** Why every attempt failed, in one error: the code says what kind of failure it was. */
export function exhausted (name: string, capability: string, failures: MeshError[]): MeshError {
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
export function retryable (err: unknown): boolean {
  if (!isMeshError(err) || err.code !== 'MESH_ERR_CALL_FAILED' || err.details?.malformed !== undefined) return false
  const status = err.details?.status
  return typeof status !== 'number' || status >= 500
}

/** Connection errors after sending that mean the provider went away (not an answer it gave). */
export const DROPPED = new Set(['ECONNRESET', 'EPIPE', 'ECONNABORTED'])

/** Why the provider was lost with the call, or undefined when the failure is something else. */
export function lostReason (err: unknown, lostWhy: string | undefined): string | undefined {
  if (lostWhy !== undefined) return lostWhy
  if (isMeshError(err) && err.code === 'MESH_ERR_CALL_FAILED' && DROPPED.has(String(err.details?.errno))) return `its connection dropped with the call (${String(err.details?.errno)})`
  return undefined
}

/** A streaming call whose provider was lost or failed after `parts` partial results reached the caller. */
export function streamBroken (name: string, provider: ProviderInfo, parts: number, gone: string | undefined, cause: unknown): MeshError {
  const why = gone ?? (cause instanceof Error ? cause.message : String(cause))
  return new MeshError('MESH_ERR_CALL_STREAM_BROKEN', `the stream of ${name} from ${provider.agent} broke after ${parts} part${parts === 1 ? '' : 's'} (${why}): it cannot be resumed, so it was not sent to another provider`, {
    cause, details: { dependency: name, provider, partsReceived: parts },
  })
}

export function timeoutOrAbort (signal: AbortSignal, name: string, cause: unknown): MeshError {
  const reason: unknown = signal.reason
  return reason instanceof DOMException && reason.name === 'TimeoutError'
    ? timedOut(name, reason, cause)
    : new MeshError('MESH_ERR_ABORTED', `the call through ${name} was aborted`, { cause: reason ?? cause })
}

/** MESH_ERR_CALL_TIMEOUT for a call through `name`, saying how long from its deadline's reason. */
export function timedOut (name: string, reason: DOMException, cause: unknown): MeshError {
  return new MeshError('MESH_ERR_CALL_TIMEOUT', `the call through ${name} ${timedOutAfter(reason)}`, { cause })
}

/** Providers listed by name in a MESH_ERR_PIN_CHANGED message (all are in `details.withheld`). */
const NAMED_WITHHELD = 3

/**
 * MESH_ERR_PIN_CHANGED when `resolution` found no provider because every one that qualified
 * advertises another definition than the pinned one; undefined otherwise. Names each provider by
 * the identity that signed its advert, the fields changed and the command that approves.
 */
export function pinChanged (name: string, resolution: Resolution): MeshError | undefined {
  if (resolution.selected !== null) return undefined
  const rows = resolution.explanation.filter((r) => r.pin !== undefined)
  if (rows.length === 0) return undefined
  const pin = rows[0].pin!
  const who = rows.slice(0, NAMED_WITHHELD).map((r) => `${r.agent} (${r.pin!.spiffeId ?? 'no SPIFFE ID: TLS off'}, peer ${r.peerId}) advertises another ${r.pin!.changed.join(', ')} (sha256 ${shortDigest(r.pin!.digest)})`)
  if (rows.length > NAMED_WITHHELD) who.push(`${rows.length - NAMED_WITHHELD} more`)
  return new MeshError('MESH_ERR_PIN_CHANGED', `${name}: the tool definition of ${pin.capability} changed, and no provider offers the pinned one (sha256 ${shortDigest(pin.pinned)}): ${who.join('; ')}. Withheld until approved: ${pin.approve}`, {
    details: { dependency: name, capability: pin.capability, pinned: pin.pinned, withheld: rows.map((r) => ({ agent: r.agent, peerId: r.peerId, spiffeId: r.pin!.spiffeId, digest: r.pin!.digest, changed: r.pin!.changed })) },
  })
}

export function noProvider (name: string, specs: ResolutionSpec[], ctx: MeshToolContext, signal: AbortSignal, key: string): MeshError {
  if (signal.aborted) return timeoutOrAbort(signal, name, undefined)
  const withheld = pinChanged(name, ctx.resolve(specs, key))
  if (withheld !== undefined) return withheld
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
