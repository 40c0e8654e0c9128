// What the call path tells telemetry (metrics) when a call ends, on both sides. Plain callbacks,
// called synchronously after the call settled: an observer must be cheap and must not throw.

/** A call through an injected tool (or `node.call`) ended, after all its attempts. */
export interface CallEnded {
  /** The dependency's name (the injected tool's). */
  dependency: string
  capability: string
  /** The agent that answered, or that had the last attempt; undefined when none was tried. */
  agent: string | undefined
  /** `ok`, or the error code the caller got. */
  outcome: string
  /** From the call to its end, in ms (the node's clock). */
  ms: number
}

/** This agent served a call of one of its tools (over MCP, or in process). */
export interface CallServed {
  tool: string
  capability: string
  /** The caller's SPIFFE ID (with mutual TLS), else undefined. */
  caller: string | undefined
  /** `ok`, or the mesh error code of the result (`MESH_ERR_CALL_TOOL_ERROR` for a tool's own error). */
  outcome: string
  ms: number
}

/** Observers of calls; each is optional. */
export interface CallEvents {
  callEnded?(e: CallEnded): void
  served?(e: CallServed): void
}
