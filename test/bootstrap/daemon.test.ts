// The bootstrap reads MCP_MESH_HOME, MCP_MESH_COLOCATED and the other variables exactly as an agent
// does (through config.ts), in process and as the mesh-bootstrap command.
import t from 'tap'
import { spawn } from 'node:child_process'
import { existsSync } from 'node:fs'
import { mkdir, mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { bootstrapOptions } from '../../src/bootstrap/daemon.ts'
import { parseMeshNodeOptions } from '../../src/config.ts'

const root = fileURLToPath(new URL('../..', import.meta.url))

t.test('bootstrap and agent read the same environment the same way', async (t) => {
  for (const colocated of ['1', 'true', 'TRUE', 'yes', 'on', '0', 'false', 'no', 'off', '']) {
    for (const home of ['/srv/mesh', '']) {
      const env = { MCP_MESH_COLOCATED: colocated, MCP_MESH_HOME: home, MCP_MESH_NAMESPACE: 'shared', MCP_MESH_LISTEN: '/ip4/127.0.0.1/tcp/0' }
      const boot = bootstrapOptions({}, env)
      const agent = parseMeshNodeOptions({ name: 'agent' }, env)
      const what = `MCP_MESH_COLOCATED="${colocated}" MCP_MESH_HOME="${home}"`
      t.same({ colocated: boot.colocated, home: boot.home, mesh: boot.mesh, listen: boot.listen }, { colocated: agent.colocated, home: agent.home, mesh: agent.mesh, listen: agent.listen }, what)
      t.equal(boot.keyFile, join(agent.home, 'bootstrap.key'), `${what}: the key is in the agents' home`)
    }
  }
  t.equal(bootstrapOptions({ colocated: false }, { MCP_MESH_COLOCATED: 'yes' }).colocated, false, 'an explicit option wins, as for agents')
  t.equal(bootstrapOptions({ ephemeralKey: true }, {}).keyFile, undefined, 'an ephemeral bootstrap has no key file')
})

t.test('mesh-bootstrap reads MCP_MESH_COLOCATED=yes and an empty MCP_MESH_HOME as agents do', async (t) => {
  const tmp = await mkdtemp(join(tmpdir(), 'mesh-bootstrap-env-'))
  t.teardown(async () => { await rm(tmp, { recursive: true, force: true }) })
  const cwd = join(tmp, 'cwd')
  await mkdir(cwd)
  // HOME decides the default home (~/.mcp-mesh); an empty MCP_MESH_HOME is unset, as in config.ts.
  const env = { ...process.env, HOME: tmp, MCP_MESH_HOME: '', MCP_MESH_COLOCATED: 'yes', MCP_MESH_NAMESPACE: `boot-env-${process.pid}` }
  const child = spawn(process.execPath, [join(root, 'bin/mesh-bootstrap.js'), '--json', '--listen', '/ip4/127.0.0.1/tcp/0'], { cwd, env, stdio: ['ignore', 'pipe', 'inherit'] })
  const exited = new Promise<number | null>((resolve) => child.once('exit', resolve))
  t.teardown(() => { if (child.exitCode === null) child.kill('SIGKILL') })
  const line = await new Promise<string>((resolve, reject) => {
    let out = ''
    child.stdout!.on('data', (d: Buffer) => {
      out += d.toString()
      if (out.includes('\n')) resolve(out.split('\n')[0])
    })
    void exited.then((code) => { reject(new Error(`mesh-bootstrap exited (${code}) before printing its addresses`)) })
  })
  const printed = JSON.parse(line) as { colocated: boolean, keyFile: string }
  t.equal(printed.colocated, true, 'MCP_MESH_COLOCATED=yes turns colocation on, as for agents')
  t.equal(printed.keyFile, join(tmp, '.mcp-mesh', 'bootstrap.key'), 'the key lives in the default home')
  t.ok(existsSync(join(tmp, '.mcp-mesh', 'bootstrap.key')), 'and was written there')
  t.notOk(existsSync(join(cwd, 'bootstrap.key')), 'not in the working directory')
  child.kill('SIGTERM')
  t.equal(await exited, 0, 'it stops cleanly')
})
