/**
 * Every error the mesh raises on purpose is a MeshError with a stable `code`.
 * Match on `code`, never on the message: messages say what to fix and may be reworded.
 * `docs/errors.md` lists every code; a test keeps the two in step.
 */
export const ErrorCodes = {
  MESH_ERR_CONFIG_INVALID: 'an option or MCP_MESH_* variable failed validation',
  MESH_ERR_KEY_FILE: 'the libp2p key file could not be read, parsed or written',
  MESH_ERR_WIRE_TOO_LARGE: 'a gossip or sync message is larger than the limit',
  MESH_ERR_WIRE_MALFORMED: 'a gossip or sync message could not be decoded',
  MESH_ERR_WIRE_SIGNATURE: 'a message signature does not verify against its signer',
  MESH_ERR_WIRE_MESH_MISMATCH: 'a message names another mesh',
  MESH_ERR_ADVERT_INVALID: 'an advert failed schema validation or limits',
  MESH_ERR_ADVERT_TOO_OLD: 'an advert is older than the maximum age or dated in the future',
  MESH_ERR_SYNC_FAILED: 'a sync exchange with a peer failed',
  MESH_ERR_DIAL_LIMITED: 'a member was not dialled: over its dial quota, or another peer (or no libp2p) answered at every address it advertises',
  MESH_ERR_JOIN_FAILED: 'no bootstrap or seed peer could be reached to join the mesh',
  MESH_ERR_NOT_STARTED: 'the node is not running',
  MESH_ERR_RESOLVE_INVALID_SPEC: 'a dependency spec is malformed',
  MESH_ERR_ABORTED: 'the operation was aborted by its signal or by stop()',
  MESH_ERR_TOOL_INVALID: 'a tool definition is malformed or its name is already taken',
  MESH_ERR_CALL_NO_PROVIDER: 'no live provider in the mesh matches the dependency (capability, version, tags)',
  MESH_ERR_CALL_TIMEOUT: 'the call did not complete within its timeout',
  MESH_ERR_CALL_UNREACHABLE: 'nothing was sent: the provider refused or reset the connection, or its advertised endpoint was refused',
  MESH_ERR_CALL_UNTRUSTED: 'nothing was sent: the provider\'s certificate is not of our trust domain or not the identity its advert endorses (or it serves plain HTTP to a caller with mutual TLS)',
  MESH_ERR_CALL_NOT_AUTHORIZED: 'the provider refused the caller: its SPIFFE ID is not on the tool\'s allow-list',
  MESH_ERR_CALL_FAILED: 'the call failed after it was sent (connection lost, HTTP or protocol error)',
  MESH_ERR_CALL_CIRCUIT_OPEN: 'nothing was sent: the circuit of every provider is open (each failed too many calls in a row; a trial call goes through after its cool-off)',
  MESH_ERR_CALL_OVERLOADED: 'nothing was sent: this caller already has its maximum of calls in flight to every provider (maxRequestsPerProvider)',
  MESH_ERR_CALL_RATE_LIMITED: 'the provider refused the call, before running it: this caller has used its rate of calls of the tool (details.retryAfterMs says when to retry)',
  MESH_ERR_CALL_SESSION_LOST: 'the provider a session was pinned to is gone (or was lost mid-call): the session is not moved to another provider, since its state lived there',
  MESH_ERR_CALL_STREAM_BROKEN: 'the provider was lost or failed after it had streamed parts of its result: the stream cannot be resumed, so the call was not sent elsewhere',
  MESH_ERR_CALL_PROVIDER_LOST: 'the provider was lost while it had the call (declared suspect or dead, or its connection dropped): the tool may have run, and it is neither read-only nor idempotent, so it was not sent elsewhere',
  MESH_ERR_CALL_INVALID_ARGS: 'the provider rejected the arguments (details hold the validation message)',
  MESH_ERR_CALL_INVALID_OUTPUT: 'the provider ran the tool but its result does not match the tool\'s own output schema',
  MESH_ERR_CALL_UNKNOWN_TOOL: 'the provider does not serve a tool of that name',
  MESH_ERR_CALL_TOOL_ERROR: 'the provider ran the tool and it reported an error',
  MESH_ERR_SERVER_BUSY: 'the provider is serving its maximum of concurrent requests',
  MESH_ERR_SERVER_DRAINING: 'the provider is shutting down and takes no new calls',
  MESH_ERR_SERVER_BODY_TOO_LARGE: 'the request body is larger than the provider accepts',
  MESH_ERR_IDENTITY_INVALID: 'a SPIFFE ID, trust domain or certificate breaks the SPIFFE X.509-SVID rules',
  MESH_ERR_IDENTITY_KEY_PERMISSIONS: 'a private key file is readable or writable by others than its owner (it must be mode 0600)',
  MESH_ERR_IDENTITY_PROVIDER: 'the identity provider (Vault) refused or failed to issue an SVID',
  MESH_ERR_NOT_ADMITTED: 'a peer did not prove an SVID of a trusted domain bound to its peer ID: the mesh\'s protocols are closed to it',
  MESH_ERR_ENTITY_INVALID: 'an entity (a partner organisation) could not be registered or revoked: a bad name or CA, our own trust domain, or one registered already',
  MESH_ERR_IDENTITY_CA: 'the local certificate authority could not be read, parsed or created',
  MESH_ERR_TRACE_INVALID_ID: 'a trace ID is not 32 lowercase hex digits (W3C trace context)',
  MESH_ERR_PIN_CHANGED: 'every provider of a pinned capability advertises another tool definition than the pinned one: withheld until meshctl pin approve',
  MESH_ERR_PIN_FILE: 'the pin file could not be read, parsed, locked or written',
  MESH_ERR_PIN_NOT_PENDING: 'meshctl pin approve or forget named no single pending change or pin',
  MESH_ERR_GATEWAY_CONFIG: 'the gateway\'s config file (meshctl gateway --config) could not be read, is not JSON, or failed validation',
} as const

/**
 * Where a mesh endpoint puts the code of a failure it detected in an `isError` tool result:
 * `result._meta[MESH_ERROR_META_KEY] = { code, ...details }` (details: `issues` for validation
 * failures). The human text stays in `content`, for MCP clients that ignore `_meta`. A tool's own
 * `isError` result carries no such entry. Callers read the code here, never from the text.
 */
export const MESH_ERROR_META_KEY = 'mcp-mesh/error'

/** What `_meta[MESH_ERROR_META_KEY]` holds: the code, and details such as validation `issues`. */
export interface MeshErrorMeta {
  code: ErrorCode
  [detail: string]: unknown
}

/** A stable error code: `MESH_ERR_<AREA>_<WHAT>`. */
export type ErrorCode = keyof typeof ErrorCodes

/** The one error class the mesh throws on purpose; `code` is stable, `details` is machine-readable. */
export class MeshError extends Error {
  override name = 'MeshError'
  readonly code: ErrorCode
  readonly details?: Record<string, unknown>

  constructor (code: ErrorCode, message: string, options?: { cause?: unknown, details?: Record<string, unknown> }) {
    super(message, options?.cause === undefined ? undefined : { cause: options.cause })
    this.code = code
    this.details = options?.details
  }
}

/** True when `err` is a MeshError with the given code. */
export function isMeshError (err: unknown, code?: ErrorCode): err is MeshError {
  return err instanceof MeshError && (code === undefined || err.code === code)
}

/**
 * Words for a failure in a log line: its message, else its name or code (libp2p throws some
 * errors with no message), else what was thrown.
 */
export function messageOf (err: unknown): string {
  if (typeof err !== 'object' || err === null) return String(err)
  const e = err as { message?: unknown, code?: unknown, name?: unknown }
  for (const v of [e.message, e.code, e.name]) if (typeof v === 'string' && v !== '') return v
  return Object.prototype.toString.call(err)
}
