// Red team for `meshctl status` (a real process): the readiness it reads from a member's advertised
// endpoint. A foreign endpoint never reaches it (an agent cannot announce one, and every replica drops
// one a hostile member signs: test/gossip/hostile-members.test.ts), redirects are not followed, and
// nothing but the known statuses or "HTTP <code>" is printed.
import t from 'tap'
import { spawn } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import { startBootstrap } from '../../src/bootstrap/daemon.ts'
import { createGossipNode } from '../../src/gossip/gossip-node.ts'
import type { GossipNode } from '../../src/gossip/gossip-node.ts'
import { fakeProvider, json } from '../helpers/fake-provider.ts'
import type { FakeProvider, Misbehave } from '../helpers/fake-provider.ts'
import { waitFor } from '../helpers/wait.ts'

const root = fileURLToPath(new URL('../..', import.meta.url))
const MESH = `status-readiness-${process.pid}`
const ESCAPE = '\u001b]0;owned\u0007\u001b[2J'
const gossip: GossipNode[] = []
const servers: FakeProvider[] = []
t.teardown(async () => {
  await Promise.all(gossip.map((g) => g.stop()))
  await Promise.all(servers.map((s) => s.close()))
})

// The fake providers serve plain HTTP: this mesh runs with TLS off, and so does meshctl.
const bootstrap = await startBootstrap({ mesh: MESH, ephemeralKey: true, colocated: true, tls: { mode: 'off' } })
gossip.push(bootstrap)

async function server (host: string, misbehave: Misbehave): Promise<FakeProvider> {
  const s = await fakeProvider({ host, misbehave })
  servers.push(s)
  return s
}

async function member (name: string, endpoint: string): Promise<void> {
  const m = createGossipNode({
    mesh: MESH, name, ephemeralKey: true, colocated: true, bootstrap: bootstrap.addrs,
    advert: { endpoint, tools: [{ name: 'get', capability: 'thing', version: '1.0.0' }] },
  })
  await m.start()
  gossip.push(m)
}

/** Runs `meshctl status <name>` as a user would, on a terminal-like text output. */
async function status (name: string): Promise<{ code: number | null, out: string }> {
  const child = spawn(process.execPath, ['bin/meshctl.js', 'status', name, '--bootstrap', bootstrap.addrs[0], '--mesh', MESH], {
    cwd: root, env: { ...process.env, NO_COLOR: '1', MCP_MESH_TLS_MODE: 'off' }, stdio: ['ignore', 'pipe', 'inherit'],
  })
  let out = ''
  child.stdout!.on('data', (d: Buffer) => { out += d.toString() })
  const code = await new Promise<number | null>((resolve) => child.once('exit', resolve))
  return { code, out }
}

const target = await server('127.0.0.1', () => false)
const foreign = await server('127.0.0.2', (_msg, res) => { json(res, 200, { status: 'ready' }); return true })
const liar = await server('127.0.0.1', (_msg, res) => { json(res, 200, { status: `${ESCAPE}ready` }); return true })
const redirector = await server('127.0.0.1', (_msg, res) => {
  res.writeHead(302, { location: target.url.replace('/mcp', '/readyz'), 'content-type': 'application/json' }).end('{"status":"ready"}')
  return true
})
// Two instances of one agent name, so one run of meshctl (a slow start on a busy machine) shows both.
await member('suspect', liar.url)
await member('suspect', redirector.url)
const refused = await member('suspect', foreign.url).then(() => undefined, (err: unknown) => err)
await waitFor('the bootstrap holds every member', () => [...bootstrap.replica.members()].length >= 3, 10_000)

t.test('an agent cannot announce an endpoint on a host it does not announce', async (t) => {
  t.match(refused, { code: 'MESH_ERR_CONFIG_INVALID', details: { fields: ['http.announceHost', 'announce'] } })
})

t.test('status asks only a member\'s own host, follows no redirect, prints no foreign text', async (t) => {
  const s = await status('suspect')
  t.equal(s.code, 0)
  const readyz = (url: string): string | undefined => s.out.split('\n').find((l) => l.includes(url))?.split('readyz: ')[1]
  t.equal(readyz(foreign.url), undefined, 'the foreign endpoint is not listed')
  t.equal(foreign.received.length, 0, 'the server on 127.0.0.2 got no request')
  t.equal(readyz(liar.url), 'HTTP 200', 'a body that is not a known status is shown as its HTTP status')
  t.ok(liar.received.some((r) => r.path === '/readyz'), 'the member\'s own host was asked')
  t.notMatch(s.out, /\u001b|\u0007/, 'no escape sequence reaches the terminal')
  t.equal(readyz(redirector.url), 'HTTP 302', 'a redirect is shown as such')
  t.equal(target.received.length, 0, 'and not followed')
})
