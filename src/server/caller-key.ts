import type { IncomingMessage } from 'node:http'
import type { Socket } from 'node:net'
import type { AuthInfo } from '@modelcontextprotocol/sdk/server/auth/types.js'

/**
 * Who sent a request, as far as the endpoint can tell: cancellations and answers to the server's
 * own requests (sampling, elicitation) are scoped by it, so one caller cannot cancel or answer
 * another's. Equal `id`s are the same caller.
 */
export interface CallerKey {
  readonly id: string
  /**
   * `identity`: an authenticated caller (`authInfo.clientId`; the SPIFFE ID once mutual TLS lands),
   * which may use many connections. `connection`: no identity, so the caller is its socket.
   */
  readonly kind: 'identity' | 'connection'
}

const connections = new WeakMap<Socket, CallerKey>()
let nextConnection = 1

/**
 * The scoping seam: the authenticated identity when the endpoint's `authenticate` names one,
 * else the connection the request came on.
 */
export function callerKeyOf (req: IncomingMessage, authInfo: AuthInfo | undefined): CallerKey {
  if (authInfo?.clientId !== undefined) return { id: `identity:${authInfo.clientId}`, kind: 'identity' }
  let key = connections.get(req.socket)
  if (key === undefined) {
    key = { id: `connection:${nextConnection++}`, kind: 'connection' }
    connections.set(req.socket, key)
  }
  return key
}
