// The official MCP conformance suite (@modelcontextprotocol/conformance, server mode) against a
// mesh agent's own endpoint: the fixture agent runs as its own process, the suite as another.
import t from 'tap'
import { spawn } from 'node:child_process'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { TOOL_SCENARIOS as APPLICABLE, TOOLS_ONLY_NOT_APPLICABLE as NOT_APPLICABLE, failures, runConformance } from '../helpers/conformance.ts'

const root = fileURLToPath(new URL('../..', import.meta.url))

const home = await mkdtemp(join(tmpdir(), 'mesh-conformance-home-'))
const agent = spawn(process.execPath, ['test/fixtures/conformance-agent.ts'], { cwd: root, env: { ...process.env, MCP_MESH_HOME: home }, stdio: ['ignore', 'pipe', 'inherit'] })
t.teardown(async () => {
  agent.kill('SIGTERM')
  if (agent.exitCode === null && agent.signalCode === null) await new Promise((resolve) => agent.once('exit', resolve))
  await rm(home, { recursive: true, force: true })
})
const url = await new Promise<string>((resolve, reject) => {
  let buf = ''
  agent.stdout!.on('data', (d: Buffer) => {
    buf += d.toString()
    const m = buf.match(/at (http\S+)/)
    if (m !== null) resolve(m[1])
  })
  agent.once('exit', (code) => reject(new Error(`the fixture agent exited with ${code}`)))
})

const { code, results } = await runConformance(url)

t.same([...results.keys()].sort(), [...APPLICABLE, ...NOT_APPLICABLE].sort(), 'the suite ran exactly the scenarios the README lists')
for (const scenario of APPLICABLE) {
  t.test(scenario, async (t) => {
    t.same(failures(results.get(scenario)), [], 'no check fails')
  })
}
t.test('scenarios for resources, prompts and completions fail only because agents do not offer them', async (t) => {
  for (const scenario of NOT_APPLICABLE) {
    const checks = results.get(scenario) ?? []
    t.ok(checks.some((c) => c.status === 'FAILURE' && /Method not found|-32601/.test(c.errorMessage ?? '')), `${scenario}: method not found`)
  }
})
t.equal(code, 1, 'the suite exits 1 only because of the not-applicable scenarios')
