// The traffic-policy scenario, as the issue measured it by hand: one caller with 8 loops calling
// a tool of two provider processes for about 22 s, with mutual TLS on (the defaults); the
// bootstrap killed (-9) at 3 s, one provider killed (-9) at 6 s, a third provider joining through
// the caller at 9 s, the second provider hung (SIGSTOP) at 13 s. Run once with a read-only tool
// (`lookup`: a provider lost mid-call is replaced at once) and once with a destructive one
// (`charge`: such calls fail with MESH_ERR_CALL_PROVIDER_LOST). Reports calls, failures by code,
// how fast they failed, and the longest gap between two successful calls.
// Usage: node bench/traffic.ts [--seconds 22] [--loops 8]
import { fork } from 'node:child_process'
import type { ChildProcess } from 'node:child_process'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { parseArgs } from 'node:util'
import { createMeshNode } from '../src/node.ts'
import { isMeshError } from '../src/errors.ts'

const { values } = parseArgs({ options: { seconds: { type: 'string', default: '22' }, loops: { type: 'string', default: '8' } } })
const SECONDS = Number(values.seconds)
const LOOPS = Number(values.loops)
const fixture = new URL('./fixtures/traffic-member.ts', import.meta.url).pathname

interface Member { proc: ChildProcess, addrs: string[] }
async function spawnMember (env: Record<string, string>, ...args: string[]): Promise<Member> {
  const proc = fork(fixture, args, { env: { ...process.env, ...env }, stdio: ['ignore', 'ignore', 'inherit', 'ipc'] })
  const addrs = await new Promise<string[]>((resolve, reject) => {
    proc.once('message', (m: { addrs: string[] }) => { resolve(m.addrs) })
    proc.once('exit', (code) => { reject(new Error(`${args.join(' ')} exited with ${code}`)) })
  })
  return { proc, addrs }
}

async function scenario (tool: 'lookup' | 'charge'): Promise<Record<string, unknown>> {
  const home = await mkdtemp(join(tmpdir(), 'mesh-traffic-'))
  const env = { MCP_MESH_HOME: home, MCP_MESH_NAMESPACE: `traffic-${tool}-${process.pid}`, MCP_MESH_COLOCATED: 'true' }
  const members: Member[] = []
  try {
    const boot = await spawnMember(env, 'bootstrap')
    members.push(boot)
    const joinEnv = { ...env, MCP_MESH_BOOTSTRAP: boot.addrs[0] }
    const p1 = await spawnMember(joinEnv, 'provider', 'p1')
    const p2 = await spawnMember(joinEnv, 'provider', 'p2')
    members.push(p1, p2)
    const c = createMeshNode({ name: `caller-${tool}`, home, mesh: env.MCP_MESH_NAMESPACE, colocated: true, handleSignals: false, bootstrap: boot.addrs })
    await c.start()
    await c.ready()
    const dep = c.dependency<{ by: string }>(tool)
    while (c.explain(tool).ranked.length < 2) await new Promise((resolve) => setTimeout(resolve, 50))
    const started = Date.now()
    const end = started + SECONDS * 1000
    const ok: number[] = []
    const failed: Array<{ code: string, ms: number, at: number }> = []
    const timeline: Array<[number, () => Promise<void> | void, string]> = [
      [3_000, () => { boot.proc.kill('SIGKILL') }, 'bootstrap killed (-9)'],
      [6_000, () => { p1.proc.kill('SIGKILL') }, 'p1 killed (-9)'],
      [9_000, async () => { members.push(await spawnMember({ ...env, MCP_MESH_BOOTSTRAP: c.gossip.addrs[0] }, 'provider', 'p3')) }, 'p3 joins through the caller'],
      [13_000, () => { p2.proc.kill('SIGSTOP') }, 'p2 hung (SIGSTOP)'],
    ]
    const events = timeline.map(([at, fn]) => new Promise<void>((resolve) => setTimeout(() => { void Promise.resolve(fn()).finally(resolve) }, at)))
    await Promise.all(Array.from({ length: LOOPS }, async () => {
      while (Date.now() < end) {
        const t0 = Date.now()
        try {
          await dep({})
          ok.push(Date.now())
        } catch (err) {
          failed.push({ code: isMeshError(err) ? err.code : String(err), ms: Date.now() - t0, at: Date.now() - started })
        }
      }
    }))
    await Promise.all(events)
    ok.sort((a, b) => a - b)
    let gap = 0
    for (let i = 1; i < ok.length; i++) gap = Math.max(gap, ok[i] - ok[i - 1])
    const byCode: Record<string, number> = {}
    for (const f of failed) byCode[f.code] = (byCode[f.code] ?? 0) + 1
    const row = { tool, calls: ok.length + failed.length, failed: failed.length, byCode, failMs: failed.map((f) => f.ms), failedAt: failed.map((f) => f.at), longestGapMs: gap, failovers: c.stats.failovers }
    p2.proc.kill('SIGCONT')
    await c.stop()
    return row
  } finally {
    for (const m of members) m.proc.kill('SIGKILL')
    await rm(home, { recursive: true, force: true })
  }
}

const rows = [await scenario('lookup'), await scenario('charge')]
console.log(`${LOOPS} loops for ${SECONDS} s, mutual TLS on; bootstrap -9 at 3 s, p1 -9 at 6 s, p3 joins at 9 s, p2 SIGSTOP at 13 s; Node ${process.versions.node}\n`)
console.log('| tool | calls | failed | by code | time to fail, ms | longest gap between successes, ms | failovers |')
console.log('|---|---|---|---|---|---|---|')
for (const r of rows) {
  const ms = (r.failMs as number[])
  console.log(`| ${String(r.tool)} | ${String(r.calls)} | ${String(r.failed)} | ${JSON.stringify(r.byCode)} | ${ms.length === 0 ? '' : `${Math.min(...ms)} to ${Math.max(...ms)}`} | ${String(r.longestGapMs)} | ${String(r.failovers)} |`)
}
