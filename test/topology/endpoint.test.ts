// The one rule for advertised MCP endpoints: callers, the resolver, meshctl status and gossip
// validation all call endpointProblem.
import t from 'tap'
import { announcedHosts, endpointProblem } from '../../src/topology/endpoint.ts'

const ID = '/p2p/12D3KooWLmbNTmpTYWh5ZtY2x8fjJ8yhLGRKmMsZVsvoyYV1pqH4'

t.test('accepted: http(s) on a host the member announces, in any spelling the URL parser equates', async (t) => {
  const cases: Array<[string, string[]]> = [
    ['http://127.0.0.1:8080/mcp', [`/ip4/127.0.0.1/tcp/4001${ID}`]],
    ['https://10.0.0.5/mcp?x=1', ['/ip4/192.168.1.9/tcp/1', '/ip4/10.0.0.5/tcp/4001']],
    ['http://[::1]:9/mcp', ['/ip6/0:0:0:0:0:0:0:1/tcp/4001']],
    ['http://Weather.Example.com:443/mcp', ['/dns4/weather.example.com/tcp/4001']],
    ['http://weather.example.com/mcp', ['/dns/WEATHER.example.com/tcp/4001/ws']],
    ['http://0x7f.1:80/mcp', ['/ip4/127.0.0.1/tcp/4001']],
  ]
  for (const [endpoint, addrs] of cases) t.equal(endpointProblem(endpoint, addrs), undefined, endpoint)
})

t.test('refused, each with a reason that is safe to print', async (t) => {
  const local = [`/ip4/127.0.0.1/tcp/4001${ID}`]
  const cases: Array<[string, string[], string]> = [
    ['http://127.0.0.2:8080/mcp', local, 'a host the member does not announce'],
    ['http://localhost:8080/mcp', local, 'a name for an announced address is still another host'],
    ['not a url', local, 'not a URL'],
    ['', local, 'empty'],
    ['ftp://127.0.0.1/mcp', local, 'another scheme'],
    ['file:///etc/passwd', local, 'a file'],
    ['http://user:pw@127.0.0.1:8080/mcp', local, 'credentials'],
    ['http://127.0.0.1:8080/mcp', [], 'no addrs at all'],
    ['http://169.254.169.254/latest/meta-data', ['/ip4/169.254.169.254/tcp/80'], 'link-local, even when announced'],
    ['http://[::ffff:169.254.169.254]/', ['/ip6/::ffff:169.254.169.254/tcp/80'], 'link-local behind an IPv4-mapped IPv6 address'],
    ['http://[fe80::1]:80/', ['/ip6/fe80::1/tcp/80'], 'IPv6 link-local'],
    ['http://0.0.0.0:8080/mcp', ['/ip4/0.0.0.0/tcp/4001'], 'unspecified: it reaches the caller itself'],
    ['http://[::]:8080/mcp', ['/ip6/::/tcp/4001'], 'IPv6 unspecified'],
    ['http://10.0.0.9/mcp', [`/ip4/10.0.0.9/tcp/4001${ID}/p2p-circuit/p2p/12D3KooWOther`], 'a relayed address names the relay, not the member'],
    ['http://evil.example/mcp', ['/dnsaddr/evil.example'], 'dnsaddr is a TXT record, not a host'],
    ['http://a.b/mcp', ['/dns4/a.b@c/tcp/1', 'ip4/a.b/tcp/1', '/unix/a.b'], 'malformed multiaddrs name no host'],
  ]
  for (const [endpoint, addrs, why] of cases) {
    const problem = endpointProblem(endpoint, addrs)
    t.type(problem, 'string', why)
    t.notMatch(problem ?? '', /[\u0000-\u001f]/, `${why}: no control characters`)
  }
  const escape = endpointProblem('http://127.0.0.1\u001b[31m:8080/mcp', local)
  t.type(escape, 'string')
  t.notMatch(escape ?? '', /\u001b/, 'the raw endpoint is never echoed')
})

t.test('announcedHosts normalizes what it reads', async (t) => {
  t.same([...announcedHosts(['/ip4/127.0.0.1/tcp/1', '/ip6/::1/tcp/1', '/dns6/Host.Example/tcp/1', '/memory/x', '/ip4/999.1.1.1/tcp/1'])], ['127.0.0.1', '[::1]', 'host.example'])
})
