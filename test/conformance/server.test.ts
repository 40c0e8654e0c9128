// The official MCP conformance suite (@modelcontextprotocol/conformance, server mode) against a
// mesh agent's own endpoint: the fixture agent runs as its own process, the suite as another.
import t from 'tap'
import { spawn } from 'node:child_process'
import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { createRequire } from 'node:module'
import { fileURLToPath } from 'node:url'

const root = fileURLToPath(new URL('../..', import.meta.url))
const suiteBin = join(createRequire(import.meta.url).resolve('@modelcontextprotocol/conformance/package.json'), '..', 'dist', 'index.js')

/** Scenarios that need resources, prompts or completions: agents offer tools only. */
const NOT_APPLICABLE = [
  'completion-complete',
  'prompts-get-embedded-resource', 'prompts-get-simple', 'prompts-get-with-args', 'prompts-get-with-image', 'prompts-list',
  'resources-list', 'resources-read-binary', 'resources-read-text', 'resources-subscribe', 'resources-templates-read', 'resources-unsubscribe',
]
/** Every other server scenario of the suite (`--suite all`); the README lists the same. */
const APPLICABLE = [
  'dns-rebinding-protection', 'elicitation-sep1034-defaults', 'elicitation-sep1330-enums', 'json-schema-2020-12', 'logging-set-level', 'ping',
  'server-initialize', 'server-sse-multiple-streams', 'server-sse-polling', 'tools-call-audio', 'tools-call-elicitation',
  'tools-call-embedded-resource', 'tools-call-error', 'tools-call-image', 'tools-call-mixed-content', 'tools-call-sampling',
  'tools-call-simple-text', 'tools-call-with-logging', 'tools-call-with-progress', 'tools-list',
]

const out = await mkdtemp(join(tmpdir(), 'mesh-conformance-'))
const home = await mkdtemp(join(tmpdir(), 'mesh-conformance-home-'))
const agent = spawn(process.execPath, ['test/fixtures/conformance-agent.ts'], { cwd: root, env: { ...process.env, MCP_MESH_HOME: home }, stdio: ['ignore', 'pipe', 'inherit'] })
t.teardown(async () => {
  agent.kill('SIGTERM')
  if (agent.exitCode === null && agent.signalCode === null) await new Promise((resolve) => agent.once('exit', resolve))
  await rm(out, { recursive: true, force: true })
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

interface Check { id: string, status: 'SUCCESS' | 'FAILURE' | 'WARNING' | 'INFO', errorMessage?: string }
const code = await new Promise<number | null>((resolve) => {
  const suite = spawn(process.execPath, [suiteBin, 'server', '--url', url, '--suite', 'all', '-o', out], { stdio: ['ignore', 'ignore', 'inherit'] })
  suite.once('exit', resolve)
})
const results = new Map<string, Check[]>()
for (const dir of await readdir(out)) {
  const scenario = dir.replace(/^server-/, '').replace(/-\d{4}-\d\d-\d\dT.*$/, '')
  results.set(scenario, JSON.parse(await readFile(join(out, dir, 'checks.json'), 'utf8')) as Check[])
}

t.same([...results.keys()].sort(), [...APPLICABLE, ...NOT_APPLICABLE].sort(), 'the suite ran exactly the scenarios the README lists')
for (const scenario of APPLICABLE) {
  t.test(scenario, async (t) => {
    const checks = results.get(scenario) ?? []
    const failures = checks.filter((c) => c.status === 'FAILURE')
    t.same(failures.map((c) => `${c.id}: ${c.errorMessage ?? ''}`), [], 'no check fails')
  })
}
t.test('scenarios for resources, prompts and completions fail only because agents do not offer them', async (t) => {
  for (const scenario of NOT_APPLICABLE) {
    const checks = results.get(scenario) ?? []
    t.ok(checks.some((c) => c.status === 'FAILURE' && /Method not found|-32601/.test(c.errorMessage ?? '')), `${scenario}: method not found`)
  }
})
t.equal(code, 1, 'the suite exits 1 only because of the not-applicable scenarios')
