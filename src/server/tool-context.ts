import type { AuthInfo } from '@modelcontextprotocol/sdk/server/auth/types.js'
import type { LoggingLevel, Progress, ServerNotification, ServerRequest } from '@modelcontextprotocol/sdk/types.js'
import type { RequestHandlerExtra } from '@modelcontextprotocol/sdk/shared/protocol.js'
import type { CallExtra } from './exchange-transport.ts'

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
    mcp: extra,
  }
}

/** A handler's context for a call from this agent itself: no caller to stream to; the headers a remote call would carry. */
export function inProcessContext (signal: AbortSignal, headers: Record<string, string> = {}): ToolContext {
  return { signal, headers, progress: async () => {}, log: async () => {} }
}
