import type { IncomingMessage } from 'node:http'

/**
 * Why a request's Host or Origin is refused (DNS rebinding: a page in a browser must not reach a
 * local agent), or undefined when it is allowed. `allowed` undefined: any Host, but a browser's
 * Origin must still name the same host.
 */
export function hostRefusal (req: IncomingMessage, allowed: string[] | undefined): string | undefined {
  const host = hostname(req.headers.host ?? '')
  if (allowed !== undefined && !allowed.includes(host)) return `Host ${host} is not allowed (http.allowedHosts)`
  const origin = req.headers.origin
  if (origin === undefined || origin === 'null') return undefined
  let originHost: string
  try {
    originHost = new URL(origin).hostname
  } catch {
    return 'Origin is malformed'
  }
  if (originHost !== host && !(allowed ?? []).includes(originHost)) return `Origin ${origin} is not allowed`
  return undefined
}

/** The host name of a Host header, without the port (IPv6 keeps its brackets). */
function hostname (header: string): string {
  const h = header.toLowerCase()
  if (h.startsWith('[')) return h.slice(0, h.indexOf(']') + 1)
  const colon = h.lastIndexOf(':')
  return colon === -1 ? h : h.slice(0, colon)
}
