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
  MESH_ERR_JOIN_FAILED: 'no bootstrap or seed peer could be reached to join the mesh',
  MESH_ERR_NOT_STARTED: 'the node is not running',
  MESH_ERR_RESOLVE_INVALID_SPEC: 'a dependency spec is malformed',
  MESH_ERR_ABORTED: 'the operation was aborted by its signal or by stop()',
} as const

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
