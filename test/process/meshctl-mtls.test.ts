// `meshctl call` and `meshctl status` (real processes) against an agent serving mutual TLS: with
// the mesh's TLS variables, meshctl takes a short-lived identity from the same local CA and calls
// like an agent; without them, it is refused and says why.
import { spawn } from 'node:child_process'
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import t from 'tap'
import { z } from 'zod'
import { createMeshNode } from '../../src/node.ts'
import { testNodeOptions } from '../helpers/mesh.ts'
import { collect } from '../helpers/collect.ts'
import { LocalCa } from '../../src/identity/local-ca.ts'
import { issueSvid } from '../../src/identity/svid.ts'

const root = fileURLToPath(new URL('../..', import.meta.url))
const MESH = `meshctl-mtls-${process.pid}`
const home = await mkdtemp(join(tmpdir(), 'mesh-meshctl-mtls-'))
const callers: Array<string | undefined> = []
const agent = createMeshNode(testNodeOptions(MESH, 'weather', { home, tls: { mode: 'strict' } }))
agent.tool('get_weather', { capability: 'weather', input: { city: z.string() } }, async ({ city }, _deps, ctx) => {
  callers.push(ctx.authInfo?.clientId)
  return { city, sky: 'clear' }
})
await agent.start()
t.teardown(async () => {
  await agent.stop()
  await rm(home, { recursive: true, force: true })
})

/** Runs meshctl as a user would, with `env` added to the environment. */
async function meshctl (args: string[], env: Record<string, string>): Promise<{ code: number | null, out: string, err: string }> {
  return collect(spawn(process.execPath, ['bin/meshctl.js', ...args, '--bootstrap', agent.gossip.addrs[0], '--mesh', MESH], {
    cwd: root, env: { ...process.env, NO_COLOR: '1', MCP_MESH_HOME: home, ...env }, stdio: ['ignore', 'pipe', 'pipe'],
  }))
}

const TLS = { MCP_MESH_TLS_MODE: 'strict' }

t.test('meshctl call with the mesh\'s TLS variables: called over mutual TLS as spiffe://.../agent/meshctl', async (t) => {
  const r = await meshctl(['call', 'weather', '{"city":"Oslo"}'], TLS)
  t.equal(r.code, 0, r.err)
  t.match(r.out, /"sky": ?"clear"/)
  t.match(r.out, /served by weather \(get_weather at https:/)
  t.equal(callers.at(-1), 'spiffe://mcp-mesh.local/agent/meshctl', 'the agent saw meshctl\'s SPIFFE ID')
})

t.test('meshctl status shows the SPIFFE ID, the certificate expiry, and readiness read over mutual TLS', async (t) => {
  const r = await meshctl(['status', 'weather'], TLS)
  t.equal(r.code, 0, r.err)
  const expires = agent.gossip.advert!.identity!.exp
  t.match(r.out, `identity   spiffe://mcp-mesh.local/agent/weather  certificate expires ${new Date(expires).toISOString()}`)
  t.match(r.out, /readyz: ready/)
  const json = JSON.parse((await meshctl(['status', 'weather', '--json'], TLS)).out) as Array<{ spiffeId: string, certificateExpires: string }>
  t.equal(json[0].spiffeId, 'spiffe://mcp-mesh.local/agent/weather')
  t.equal(Date.parse(json[0].certificateExpires), expires)
})

t.test('without them, meshctl is not admitted to the mesh, sends nothing, and says why', async (t) => {
  const before = callers.length
  const r = await meshctl(['call', 'weather', '{"city":"Oslo"}'], { MCP_MESH_TLS_MODE: 'off' })
  t.equal(r.code, 3, 'the exit code of an unreachable mesh')
  t.match(r.err, /MESH_ERR_JOIN_FAILED/)
  t.match(r.err, /MCP_MESH_TLS_MODE=off/, 'the error names the likely cause')
  t.equal(callers.length, before, 'the tool did not run')
  const s = await meshctl(['status', 'weather'], { MCP_MESH_TLS_MODE: 'off' })
  t.equal(s.code, 3)
  t.match(s.err, /MESH_ERR_JOIN_FAILED/)
})

t.test('elsewhere, with --cert, --key and --ca: meshctl calls with that identity, whatever its home holds', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'mesh-meshctl-files-'))
  t.teardown(async () => { await rm(dir, { recursive: true, force: true }) })
  const svid = await issueSvid(await LocalCa.open(home, 'mcp-mesh.local', { create: false }), { name: 'ops', hosts: [] })
  await writeFile(join(dir, 'svid.key'), svid.keyPem, { mode: 0o600 })
  await writeFile(join(dir, 'svid.pem'), svid.certPem)
  await writeFile(join(dir, 'bundle.pem'), svid.bundlePem)
  const r = await meshctl(['call', 'weather', '{"city":"Bergen"}', '--cert', join(dir, 'svid.pem'), '--key', join(dir, 'svid.key'), '--ca', join(dir, 'bundle.pem')], { MCP_MESH_HOME: dir })
  t.equal(r.code, 0, r.err)
  t.equal(callers.at(-1), 'spiffe://mcp-mesh.local/agent/ops', 'the agent saw the SPIFFE ID of the files')
  const half = await meshctl(['call', 'weather', '{}', '--cert', join(dir, 'svid.pem')], {})
  t.equal(half.code, 2, 'a usage error')
  t.match(half.err, /--cert, --key and --ca go together/)
})
