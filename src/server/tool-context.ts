import type { AuthInfo } from '@modelcontextprotocol/sdk/server/auth/types.js'
import type { LoggingLevel, Progress, ServerNotification, ServerRequest } from '@modelcontextprotocol/sdk/types.js'
import type { RequestHandlerExtra } from '@modelcontextprotocol/sdk/shared/protocol.js'
import type { CallExtra } from './exchange-transport.ts'
import { PARTIAL_METHOD, PARTS_META_KEY } from '../proxy/call-scope.ts'
import type { PartListener } from '../proxy/call-scope.ts'

/** A stream of partial results that ends with a final result, as `dependency.stream(args)` returns it. */
export interface PartStream<R> extends AsyncIterable<unknown> {
  /** The final result; rejects with the call's error. */
  readonly result: Promise<R>
}

/** What a tool handler gets besides its arguments and dependencies. */
export interface ToolContext {
  /** Aborts when the caller cancels or disconnects, or the node stops. Pass it to your own I/O. */
  signal: AbortSignal
  /** The caller's identity, when the endpoint authenticates callers. */
  authInfo?: AuthInfo
  /** The HTTP headers of the call (for in-process calls, the propagated headers a remote call would carry). */
  headers: Record<string, string | string[] | undefined>
  /** Reports progress to the caller (MCP `notifications/progress`), when it asked for it. */
  progress(p: Progress): Promise<void>
  /** Sends a log message to the caller (MCP `notifications/message`), streamed before the result. */
  log(level: LoggingLevel, data: unknown): Promise<void>
  /**
   * Sends a partial result to the caller, before the final one (a tool declared `streaming:
   * true`): over MCP a `notifications/mesh/partial` related to the call, `{ progressToken?, part }`,
   * with `part` as JSON; in process, to the calling handler's stream. A no-op when the caller did
   * not ask for parts (a plain call rather than `stream()`). It resolves once the part is written
   * to a connection with room (or handed to an in-process reader with room): awaiting it slows
   * the handler down to its caller's pace.
   */
  emit(part: unknown): Promise<void>
  /**
   * Passes a downstream stream through to this call's caller: emits every part of `stream` in
   * order, then returns its final result (an intermediate agent: `return await
   * ctx.pipe(dep.stream(args))`). Its errors are thrown, and breaking off ends the downstream call.
   */
  pipe<R>(stream: PartStream<R>): Promise<R>
  /**
   * The SDK's request context, for what the mesh does not wrap (sampling and elicitation
   * requests to the caller: `mcp.sendRequest`). Undefined when the call ran in process.
   */
  mcp?: RequestHandlerExtra<ServerRequest, ServerNotification>
}

const LOG_LEVELS: LoggingLevel[] = ['debug', 'info', 'notice', 'warning', 'error', 'critical', 'alert', 'emergency']

/**
 * A handler's context for a call over MCP, from the SDK's request context (or the fast path's,
 * shaped alike). `logLevel` is read when a message is logged; `logger` names the agent.
 */
export function remoteContext (extra: CallExtra, logLevel: () => LoggingLevel, logger: string): ToolContext {
  return {
    signal: extra.signal,
    ...(extra.authInfo === undefined ? {} : { authInfo: extra.authInfo }),
    headers: extra.requestInfo?.headers ?? {},
    progress: async (p) => {
      const token = extra._meta?.progressToken
      if (token === undefined) return
      await extra.sendNotification({ method: 'notifications/progress', params: { ...p, progressToken: token } })
    },
    log: async (level, data) => {
      // Only the call's own stream can carry it (there is no GET stream), so it is sent as
      // related to the call, after the level check (the SDK's sendLoggingMessage is neither).
      if (LOG_LEVELS.indexOf(level) < LOG_LEVELS.indexOf(logLevel())) return
      await extra.sendNotification({ method: 'notifications/message', params: { level, data, logger } })
    },
    ...withPipe(async (part) => {
      // Sent only to a caller that asked for parts; the transport holds it until the caller reads.
      if (extra._meta?.[PARTS_META_KEY] !== true) return
      const token = extra._meta?.progressToken
      await extra.sendNotification({ method: PARTIAL_METHOD, params: { ...(token === undefined ? {} : { progressToken: token }), part } } as unknown as ServerNotification)
    }),
    mcp: extra,
  }
}

/**
 * A handler's context for a call from this agent itself: the headers a remote call would carry;
 * parts go to `onPart` (the calling handler's stream), progress and logs nowhere.
 */
export function inProcessContext (signal: AbortSignal, headers: Record<string, string> = {}, onPart?: PartListener): ToolContext {
  return { signal, headers, progress: async () => {}, log: async () => {}, ...withPipe(async (part) => { await onPart?.(part) }) }
}

/** `emit`, and `pipe` built on it. */
function withPipe (emit: (part: unknown) => Promise<void>): Pick<ToolContext, 'emit' | 'pipe'> {
  return {
    emit,
    pipe: async <R>(stream: PartStream<R>): Promise<R> => {
      for await (const part of stream) await emit(part)
      return await stream.result
    },
  }
}
