/**
 * Which MCP endpoints a member may advertise. The endpoint is a string any member writes, and
 * every caller that resolves the member's capability POSTs to it: unchecked, a member could point
 * the whole mesh at a cloud metadata service or an internal admin port (SSRF). Callers, the
 * resolver, `meshctl status` and gossip validation all apply this one rule.
 * Pure: no network, no name resolution.
 */

/**
 * Why `endpoint` is not a place to call, or undefined when it is. Accepted: an `http:` or
 * `https:` URL with no credentials whose host is one of the hosts of the same advert's libp2p
 * `addrs` (`/ip4/<h>/...`, `/ip6/<h>/...`, `/dns|dns4|dns6/<h>/...`; relayed addresses do not
 * count). Refused whatever the addrs say: unspecified addresses (`0.0.0.0/8`, `::`), which
 * reach the caller's own host, and link-local ones (`169.254.0.0/16`, `fe80::/10`), where cloud
 * metadata services live and no agent is reachable from another host.
 * The reason names only parsed, normalized hosts, never the raw string, so it is safe to print.
 */
export function endpointProblem (endpoint: string, addrs: readonly string[]): string | undefined {
  let url: URL
  try {
    url = new URL(endpoint)
  } catch {
    return 'the endpoint is not a URL'
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') return `the endpoint's scheme is ${url.protocol.slice(0, 16)} (only http and https)`
  if (url.username !== '' || url.password !== '') return 'the endpoint carries credentials'
  const host = url.hostname
  const special = specialAddress(host)
  if (special !== undefined) return `the endpoint's host ${host} is ${special}`
  const announced = announcedHosts(addrs)
  if (!announced.has(host)) {
    const list = [...announced].slice(0, 4).join(', ')
    return `the endpoint's host ${host} is not one of the member's announced hosts (${list === '' ? 'none' : list})`
  }
  return undefined
}

/** The hosts of libp2p multiaddrs, normalized as URL hostnames (so `::1` reads `[::1]`). */
export function announcedHosts (addrs: readonly string[]): Set<string> {
  const hosts = new Set<string>()
  for (const addr of addrs) {
    const host = hostOf(addr)
    if (host !== undefined) hosts.add(host)
  }
  return hosts
}

const NAME = /^[A-Za-z0-9._-]+$/
const IPV6 = /^[0-9A-Fa-f:.]+$/

function hostOf (addr: string): string | undefined {
  // A relayed address names the relay's host, not the member's.
  if (addr.includes('/p2p-circuit')) return undefined
  const [empty, proto, value] = addr.split('/', 3)
  if (empty !== '' || value === undefined) return undefined
  let raw: string
  if (proto === 'ip6' && IPV6.test(value)) raw = `[${value}]`
  else if ((proto === 'ip4' || proto === 'dns' || proto === 'dns4' || proto === 'dns6') && NAME.test(value)) raw = value
  else return undefined
  try {
    // The URL parser's normal form: lower case, IPv4 in dotted quads, IPv6 compressed.
    return new URL(`http://${raw}/`).hostname
  } catch {
    return undefined
  }
}

/** What makes a normalized host unfit to call whatever a member announces, if anything. */
function specialAddress (host: string): string | undefined {
  const v4 = host.startsWith('[') ? mappedV4(host) : host
  if (v4 !== undefined) {
    if (/^0\.\d+\.\d+\.\d+$/.test(v4)) return 'an unspecified address'
    if (/^169\.254\.\d+\.\d+$/.test(v4)) return 'link-local (cloud metadata services live there)'
  }
  if (host === '[::]') return 'an unspecified address'
  if (/^\[fe[89ab][0-9a-f]:/.test(host)) return 'link-local (cloud metadata services live there)'
  return undefined
}

/** The IPv4 address inside an IPv4-mapped IPv6 host (`[::ffff:a9fe:a9fe]`), if it is one. */
function mappedV4 (host: string): string | undefined {
  const m = /^\[::ffff:([0-9a-f]{1,4}):([0-9a-f]{1,4})\]$/.exec(host)
  if (m === null) return undefined
  const hi = parseInt(m[1], 16)
  const lo = parseInt(m[2], 16)
  return `${hi >> 8}.${hi & 255}.${lo >> 8}.${lo & 255}`
}
