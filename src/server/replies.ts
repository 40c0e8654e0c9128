import type { ServerResponse } from 'node:http'
import type { ErrorCode } from '../errors.ts'

/** Answers with a JSON body. */
export function json (res: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body)
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) }).end(text)
}

/** Refuses a POST with a JSON-RPC error body; mesh codes ride in `error.data.code`. */
export function reject (res: ServerResponse, status: number, code: ErrorCode | undefined, message: string, rpcCode = -32000): void {
  const headers: Record<string, string> = { 'content-type': 'application/json' }
  if (status === 503) headers['retry-after'] = '1'
  const error = { code: rpcCode, message, ...(code === undefined ? {} : { data: { code } }) }
  const text = JSON.stringify({ jsonrpc: '2.0', id: null, error })
  res.writeHead(status, { ...headers, 'content-length': Buffer.byteLength(text) }).end(text)
}

/** 413, and the connection closes (the rest of the body is not read). */
export function tooLarge (res: ServerResponse): void {
  if (res.headersSent) return
  res.setHeader('connection', 'close')
  reject(res, 413, 'MESH_ERR_SERVER_BODY_TOO_LARGE', 'the request body is larger than the limit (http.maxBodyBytes)')
}
