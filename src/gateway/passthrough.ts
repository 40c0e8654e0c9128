import type { Server } from '@modelcontextprotocol/sdk/server/index.js'
import type { RequestHandlerExtra } from '@modelcontextprotocol/sdk/shared/protocol.js'
import {
  CreateMessageRequestSchema, CreateMessageResultSchema, CreateMessageResultWithToolsSchema, ElicitRequestSchema, ElicitResultSchema,
  ErrorCode, LoggingLevelSchema, McpError, SetLevelRequestSchema,
} from '@modelcontextprotocol/sdk/types.js'
import type { LoggingLevel, ServerNotification, ServerRequest } from '@modelcontextprotocol/sdk/types.js'
import type { CallOptions } from '../proxy/mesh-tool.ts'

/** The request context of a host's `tools/call`. */
type HostExtra = RequestHandlerExtra<ServerRequest, ServerNotification>

const LEVELS: readonly LoggingLevel[] = LoggingLevelSchema.options
/**
 * The SDK's own limit on a request (60 s) would cut a person answering an elicitation short;
 * the call's deadline, which aborts the request, is the limit instead.
 */
const NO_TIMEOUT_MS = 2 ** 31 - 1

/**
 * The host's logging level (`logging/setLevel`) on one host connection: what it allows now. Every
 * level passes until the host sets one. The gateway declares the `logging` capability for it.
 */
export function hostLogLevel (server: Server): (level: LoggingLevel) => boolean {
  let least = 0
  server.setRequestHandler(SetLevelRequestSchema, (req) => {
    least = LEVELS.indexOf(req.params.level)
    return {}
  })
  return (level) => LEVELS.indexOf(level) >= least
}

/**
 * What one host's call passes between the provider and the host: the provider's log messages go
 * to the host as the gateway's own logging (related to the host's call, at the level it set); its
 * `sampling/createMessage` and `elicitation/create` requests go to the host as the gateway's, and
 * the host's answer back. A host that did not declare the capability (or, for sampling with tools
 * or URL elicitation, its sub-capability) is not asked: the provider gets an error saying so.
 * Other requests get JSON-RPC -32601. Cancelling the host's call aborts what the host is asked.
 */
export function passThrough (server: Server, extra: HostExtra, allows: (level: LoggingLevel) => boolean): Pick<CallOptions, 'onLog' | 'onRequest'> {
  return {
    onLog: (message) => {
      // A host gone mid-send: its close cleans up.
      if (allows(message.level)) extra.sendNotification({ method: 'notifications/message', params: message }).catch(() => {})
    },
    onRequest: async (method, params, signal) => {
      const host = server.getClientCapabilities()
      if (method === 'sampling/createMessage') {
        const req = parsed(CreateMessageRequestSchema.safeParse({ method, params }), method)
        const tools = req.params.tools !== undefined || req.params.toolChoice !== undefined
        if (host?.sampling === undefined) throw cannot('sampling', method)
        if (tools && host.sampling.tools === undefined) throw cannot('sampling with tools (sampling.tools)', method)
        return await extra.sendRequest(req, tools ? CreateMessageResultWithToolsSchema : CreateMessageResultSchema, { signal, timeout: NO_TIMEOUT_MS })
      }
      if (method === 'elicitation/create') {
        const req = parsed(ElicitRequestSchema.safeParse({ method, params }), method)
        if (host?.elicitation === undefined) throw cannot('elicitation', method)
        if (req.params.mode === 'url' && host.elicitation.url === undefined) throw cannot('URL elicitation (elicitation.url)', method)
        return await extra.sendRequest(req, ElicitResultSchema, { signal, timeout: NO_TIMEOUT_MS })
      }
      throw new McpError(ErrorCode.MethodNotFound, `the mesh gateway passes only sampling/createMessage and elicitation/create on to its MCP host, not ${method}`)
    },
  }
}

/** The request when it parsed; else JSON-RPC -32602 for the provider (the host is not asked). */
function parsed<T> (r: { success: true, data: T } | { success: false }, method: string): T {
  if (!r.success) throw new McpError(ErrorCode.InvalidParams, `the ${method} request is not a valid MCP request: the gateway did not pass it on to its host`)
  return r.data
}

function cannot (capability: string, method: string): McpError {
  return new McpError(ErrorCode.MethodNotFound, `the MCP host behind the mesh gateway cannot answer ${method}: it did not declare the ${capability} capability`)
}
