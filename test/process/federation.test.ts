// Federation end to end, as OS processes: two organisations, each with its own home, local CA,
// trust domain and bootstrap. Org B's bootstrap and agent join through org A's bootstrap address.
// Org A's planner calls org B's weather through a dependency that opts in to org B's domain.
// Before registration the call fails; after `meshctl entity register` on both sides it succeeds
// (no restart); after `meshctl entity revoke` on org A's side it fails again.
import { spawn } from 'node:child_process'
import type { ChildProcess } from 'node:child_process'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import t from 'tap'
import { collect } from '../helpers/collect.ts'
import { reapOnExit } from '../helpers/reap.ts'
import { waitFor } from '../helpers/wait.ts'
import { caPaths } from '../../src/identity/local-ca.ts'

t.setTimeout(240_000)
const root = fileURLToPath(new URL('../..', import.meta.url))
const MESH = `fed-proc-${process.pid}`
const homes = { a: await mkdtemp(join(tmpdir(), 'mesh-org-a-')), b: await mkdtemp(join(tmpdir(), 'mesh-org-b-')) }
const envOf = (org: 'a' | 'b'): Record<string, string> => ({ ...process.env as Record<string, string>, NO_COLOR: '1', MCP_MESH_HOME: homes[org], MCP_MESH_TRUST_DOMAIN: `${org}.test`, MCP_MESH_NAMESPACE: MESH, MCP_MESH_COLOCATED: 'true' })
const procs: ChildProcess[] = []
t.teardown(async () => {
  for (const p of procs) if (p.exitCode === null && p.signalCode === null) p.kill('SIGTERM')
  await Promise.all(procs.map(async (p) => p.exitCode === null && p.signalCode === null ? new Promise((resolve) => p.once('exit', resolve)) : undefined))
  await rm(homes.a, { recursive: true, force: true })
  await rm(homes.b, { recursive: true, force: true })
})

/** Starts a long-running process; resolves with the first match of `line` in its output. */
async function start (args: string[], env: Record<string, string>, line: RegExp): Promise<string> {
  const p = spawn(process.execPath, args, { cwd: root, env, stdio: ['ignore', 'pipe', 'inherit'] })
  reapOnExit(p, 'SIGTERM')
  procs.push(p)
  let out = ''
  return new Promise((resolve, reject) => {
    p.stdout!.on('data', (d: Buffer) => {
      out += d.toString()
      const m = out.match(line)
      if (m !== null) resolve(m[1] ?? m[0])
    })
    p.once('exit', (code) => { reject(new Error(`${args.join(' ')} exited (${code}) before printing ${line}:\n${out}`)) })
  })
}
const meshctl = async (org: 'a' | 'b', ...args: string[]) => collect(spawn(process.execPath, ['bin/meshctl.js', ...args], { cwd: root, env: envOf(org), stdio: ['ignore', 'pipe', 'pipe'] }))

const bootA = await start(['bin/mesh-bootstrap.js', '--listen', '/ip4/127.0.0.1/tcp/0'], envOf('a'), /(\/ip4\/\S+\/p2p\/\S+)/)
const bootB = await start(['bin/mesh-bootstrap.js', '--listen', '/ip4/127.0.0.1/tcp/0', '--peer', bootA], envOf('b'), /(\/ip4\/\S+\/p2p\/\S+)/)
await start(['test/fixtures/org-agent.ts', 'planner'], { ...envOf('a'), MCP_MESH_BOOTSTRAP: bootA, ORG_PARTNER: 'b.test', MCP_MESH_SETTLE_MS: '0' }, /planner serving/)
await start(['test/fixtures/org-agent.ts', 'weather'], { ...envOf('b'), MCP_MESH_BOOTSTRAP: `${bootB},${bootA}`, ORG_ALLOW: 'spiffe://a.test/agent/*' }, /weather serving/)
const forecast = async () => meshctl('a', 'call', 'forecast', '{"city":"Oslo"}', '--bootstrap', bootA, '--json')

t.test('before the organisations register each other, org A\'s call to org B fails, saying why', async (t) => {
  const r = await forecast()
  t.not(r.code, 0)
  t.match(r.err, /no provider for weather: wanted capability weather, partners b\.test/, 'org B\'s weather never reached org A')
})

t.test('after registering on both sides (no restart), the call crosses organisations', async (t) => {
  const a = await meshctl('a', 'entity', 'register', 'org-b', '--ca-cert', caPaths(homes.b, 'b.test').cert, '--trust-domain', 'b.test')
  t.equal(a.code, 0, a.err)
  const b = await meshctl('b', 'entity', 'register', 'org-a', '--ca-cert', caPaths(homes.a, 'a.test').cert, '--trust-domain', 'a.test')
  t.equal(b.code, 0, b.err)
  let last = { code: null as number | null, out: '', err: '' }
  await waitFor('org A\'s call to reach org B', async () => { last = await forecast(); return last.code === 0 }, 60_000, 200)
  const json = JSON.parse(last.out) as { result: { weather: { sky: string, caller: string }, servedBy: string } }
  t.equal(json.result.servedBy, 'weather', 'served by org B\'s agent')
  t.equal(json.result.weather.caller, 'spiffe://a.test/agent/planner', 'which saw org A\'s planner calling')
})

t.test('after org A revokes org B, the call fails again', async (t) => {
  const r = await meshctl('a', 'entity', 'revoke', 'org-b')
  t.equal(r.code, 0, r.err)
  let last = { code: null as number | null, out: '', err: '' }
  await waitFor('org A\'s call to fail', async () => { last = await forecast(); return last.code !== 0 }, 30_000, 200)
  // Org A no longer trusts org B's weather ("not a registered entity"), or has dropped it as
  // unreachable: it cut every connection to it. Either way, no provider.
  t.match(last.err, /no provider for weather/, last.err)
})
