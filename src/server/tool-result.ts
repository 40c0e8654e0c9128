import type { CallToolResult } from '@modelcontextprotocol/sdk/types.js'
import type { z } from 'zod'
import { MESH_ERROR_META_KEY } from '../errors.ts'
import type { ErrorCode, MeshErrorMeta } from '../errors.ts'

/** What a handler returned, as an MCP tool result. Objects also go out as structured content. */
export function toResult (value: unknown): CallToolResult {
  if (isCallToolResult(value)) return value
  if (typeof value === 'string') return { content: [{ type: 'text', text: value }] }
  const text = JSON.stringify(value) ?? 'null'
  const structured = typeof value === 'object' && value !== null && !Array.isArray(value)
  return structured
    ? { content: [{ type: 'text', text }], structuredContent: value as Record<string, unknown> }
    : { content: [{ type: 'text', text }] }
}

/**
 * A failure the mesh detected, as an `isError` result: the code (and details) as data in
 * `_meta[MESH_ERROR_META_KEY]` for callers, the text in `content` for people and plain MCP clients.
 */
export function meshErrorResult (code: ErrorCode, text: string, details: Record<string, unknown> = {}): CallToolResult {
  const meta: MeshErrorMeta = { ...details, code }
  return { isError: true, content: [{ type: 'text', text }], _meta: { [MESH_ERROR_META_KEY]: meta } }
}

/** Zod issues as plain data (path, message, code): what `_meta` carries for validation failures. */
export function issuesOf (error: z.ZodError): Array<{ path: Array<string | number>, message: string, code: string }> {
  return error.issues.map((i) => ({
    path: i.path.map((p) => (typeof p === 'symbol' ? String(p) : p)),
    message: i.message,
    code: i.code,
  }))
}

function isCallToolResult (v: unknown): v is CallToolResult {
  return typeof v === 'object' && v !== null && Array.isArray((v as { content?: unknown }).content) &&
    (v as { content: unknown[] }).content.every((c) => typeof c === 'object' && c !== null && typeof (c as { type?: unknown }).type === 'string')
}
