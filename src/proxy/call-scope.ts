import { AsyncLocalStorage } from 'node:async_hooks'

/**
 * What a tool handler's outbound calls inherit from the call that runs it: the caller's deadline
 * (so a chain of hops never outlives its first caller's) and its signal (so they stop when the
 * caller gives up). Set by the tool registry around each handler, read by injected tools.
 */
export interface CallScope {
  /** When the inbound caller stops waiting, on the node's clock (ms); undefined without a deadline. */
  deadlineAt?: number
  /** Aborts when the inbound caller cancels, disconnects or runs out of time. */
  signal: AbortSignal
  /** The inbound headers the node propagates (`propagateHeaders`, trace context), lowercase names. */
  headers?: Record<string, string>
}

/** The scope of the tool call running now, if any. */
export const callScope = new AsyncLocalStorage<CallScope>()

/** The header our callers send: the budget left for the call, in ms. */
export const TIMEOUT_HEADER = 'mcp-mesh-timeout-ms'
/** The session key of a call through a session dependency (`session: true`). */
export const SESSION_HEADER = 'mcp-mesh-session'
/**
 * The notification a streaming tool sends for each partial result (`ctx.emit(part)`), related
 * to its call: params `{ progressToken?, part }`. MCP lets servers send notifications of their
 * own methods; clients that do not know it ignore it.
 */
export const PARTIAL_METHOD = 'notifications/mesh/partial'
/** The `_meta` key of a `tools/call` whose caller wants its partial results (`stream()`): `true`. */
export const PARTS_META_KEY = 'mcp-mesh/parts'
/** Receives a streaming call's partial results in order; a promise it returns holds the next one back (backpressure). */
export type PartListener = (part: unknown) => void | Promise<void>
/** MCP Mesh's header, accepted inbound: the budget left, in seconds. */
export const MCP_MESH_TIMEOUT_HEADER = 'x-mesh-timeout'
/** Longer budgets are clamped: a timer takes at most about 24.8 days. */
const MAX_BUDGET_MS = 2 ** 31 - 1

/**
 * The budget an inbound call carries, in ms: ours, else MCP Mesh's; undefined when there is
 * none or it is not a positive number (a malformed header is ignored, not trusted).
 */
export function inboundBudget (headers: Record<string, string | string[] | undefined>): number | undefined {
  const ours = one(headers[TIMEOUT_HEADER])
  const theirs = ours === undefined ? one(headers[MCP_MESH_TIMEOUT_HEADER]) : undefined
  const raw = ours ?? theirs
  if (raw === undefined || !/^\d+(\.\d+)?$/.test(raw)) return undefined
  const ms = ours !== undefined ? Number(raw) : Number(raw) * 1000
  return ms > 0 ? Math.min(Math.ceil(ms), MAX_BUDGET_MS) : undefined
}

function one (v: string | string[] | undefined): string | undefined {
  return Array.isArray(v) ? (v.length === 1 ? v[0] : undefined) : v
}
