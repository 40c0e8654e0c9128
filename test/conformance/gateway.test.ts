// The official MCP conformance suite (server mode, `--suite all`) against `meshctl gateway --http`,
// in front of a mesh under mutual TLS whose one agent offers the suite's fixture tools (their
// capabilities are the tool names the suite calls). Agent, gateway and suite are processes.
import { spawn } from 'node:child_process'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import t from 'tap'
import { startBootstrap } from '../../src/bootstrap/daemon.ts'
import { spawnExample } from '../helpers/agents.ts'
import { TOOLS_ONLY_NOT_APPLICABLE, failures, runConformance } from '../helpers/conformance.ts'
import { reapOnExit } from '../helpers/reap.ts'
import { waitFor } from '../helpers/wait.ts'

t.setTimeout(300_000)

/** Scenarios the gateway passes (no failed check); the README lists the same. */
const PASSING = [
  'dns-rebinding-protection', 'json-schema-2020-12', 'logging-set-level', 'ping', 'server-initialize',
  'server-sse-multiple-streams', 'server-sse-polling', 'tools-call-audio', 'tools-call-embedded-resource', 'tools-call-error',
  'tools-call-image', 'tools-call-mixed-content', 'tools-call-simple-text', 'tools-call-with-progress', 'tools-list',
]
/**
 * Not yet applicable: the tool sends log messages, or sampling or elicitation requests, back to
 * its caller during the call, and the gateway does not pass them on to the host yet.
 */
const NOT_YET = {
  'tools-call-with-logging': /No log notifications received/,
  'tools-call-sampling': /did not request sampling/,
  'tools-call-elicitation': /did not request elicitation/,
  'elicitation-sep1034-defaults': /did not request elicitation/,
  'elicitation-sep1330-enums': /did not request elicitation/,
}

const root = fileURLToPath(new URL('../..', import.meta.url))
const MESH = `gateway-conformance-${process.pid}`
const home = await mkdtemp(join(tmpdir(), 'mesh-gateway-conformance-'))
const boot = await startBootstrap({ mesh: MESH, home, ephemeralKey: true, colocated: true, listen: ['/ip4/127.0.0.1/tcp/0'] })
const agent = await spawnExample('test/fixtures/conformance-agent.ts', [], { MCP_MESH_NAMESPACE: MESH, MCP_MESH_HOME: home, MCP_MESH_BOOTSTRAP: boot.addrs[0] })
// The gateway takes the bootstrap's snapshot when it joins: wait until the agent's advert is in it.
await waitFor('the bootstrap knows the fixture agent', () => [...boot.replica.members()].some((m) => m.advert.tools.length > 0))
// A short call timeout: the not-yet scenarios' calls wait for an answer the host is never asked for.
const gateway = spawn(process.execPath, ['bin/meshctl.js', 'gateway', '--http', '127.0.0.1:0', '--call-timeout', '3000', '--bootstrap', boot.addrs[0], '--mesh', MESH], {
  cwd: root, env: { ...process.env, MCP_MESH_HOME: home, NO_COLOR: '1' }, stdio: ['ignore', 'ignore', 'pipe'],
})
reapOnExit(gateway)
const gatewayExited = new Promise<number | null>((resolve) => gateway.once('exit', resolve))
t.teardown(async () => {
  if (gateway.exitCode === null) gateway.kill('SIGKILL')
  agent.proc.kill('SIGKILL')
  await Promise.all([gatewayExited, agent.exited])
  await boot.stop()
  await rm(home, { recursive: true, force: true })
})
let err = ''
gateway.stderr.on('data', (d: Buffer) => { err += d.toString() })
await waitFor('the gateway prints its URL', () => /at (http:\S+)/.test(err), 30_000)
const url = /at (http:\S+)/.exec(err)![1]
const { code, results } = await runConformance(url)

t.test('the suite ran every scenario the README names, and exactly the expected ones pass', async (t) => {
  t.match(err, /serving 13 tools at/, 'the gateway served every fixture tool from the start')
  t.same([...results.keys()].sort(), [...PASSING, ...Object.keys(NOT_YET), ...TOOLS_ONLY_NOT_APPLICABLE].sort())
  const passed = [...results].filter(([, checks]) => failures(checks).length === 0).map(([s]) => s).sort()
  t.same(passed, PASSING, 'a regression, or a scenario that now passes: update PASSING and the README')
  t.equal(code, 1, 'the suite exits 1 for the scenarios that do not pass')
})
for (const scenario of PASSING) {
  t.test(scenario, async (t) => {
    t.same(failures(results.get(scenario)), [], 'no check fails')
  })
}
t.test('not yet: the tool asks its caller (logs, sampling, elicitation) and the gateway does not pass that on', async (t) => {
  for (const [scenario, reason] of Object.entries(NOT_YET)) t.match(failures(results.get(scenario)).join('\n'), reason, scenario)
})
t.test('not applicable: resources, prompts and completions (the gateway offers tools)', async (t) => {
  for (const scenario of TOOLS_ONLY_NOT_APPLICABLE) t.match(failures(results.get(scenario)).join('\n'), /Method not found|-32601/, scenario)
})
