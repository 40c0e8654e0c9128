// Memory of one agent process with everything the mesh loads by default (libp2p, gossip, the
// endpoint, the client, mutual TLS with an "auto" identity) and with TLS off, versus a bare stock
// MCP SDK server offering the same tool, and a bare Node; and each one's start-up time (spawn
// until it prints its URL).
// Each runs as its own process; RSS is read from /proc twice: idle 3 s after start-up (`--idle <s>`:
// later, when V8's memory reducer and the mesh's heap trim have had their turn), and 3 s
// after `--calls` calls (200) from a stock SDK client. Runs are repeated (`--runs`, 3): the table
// shows the median and the worst, since V8 sizes its heap by what survived so far and one process
// can land a few MB off another.
// With `--joined <s>`, each run also starts the agent joined to a bootstrap (run in this process, on
// the same local CA) and reads its RSS after <s> seconds idle in the mesh; with `--semi <MB>` as
// well, once more with V8's young generation capped (`--max-semi-space-size=<MB>`): the join's
// burst grows the young generation to its default maximum, and V8 keeps the pages it frees
// when the young generation shrinks again, so the cap shows how much of the joined RSS is that.
// With `--untrimmed` as well, once more with the heap trim off (MCP_MESH_TRIM_HEAP=false): the
// pages V8 keeps until a memory-reducing GC, which the trim asks for once the agent is idle.
// Usage: node bench/memory.ts [--runs 3] [--calls 200] [--idle 3] [--joined 60 [--semi 2] [--untrimmed]]
import { spawn } from 'node:child_process'
import { readFile, mkdir, writeFile, mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { parseArgs } from 'node:util'
import { Agent, fetch as undiciFetch } from 'undici'
import { Client } from '@modelcontextprotocol/sdk/client/index.js'
import { LocalCa } from '../src/identity/local-ca.ts'
import { issueSvid } from '../src/identity/svid.ts'
import { startBootstrap } from '../src/bootstrap/daemon.ts'
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js'

const { values } = parseArgs({ options: { runs: { type: 'string', default: '3' }, calls: { type: 'string', default: '200' }, joined: { type: 'string', default: '0' }, semi: { type: 'string' }, untrimmed: { type: 'boolean', default: false }, idle: { type: 'string', default: '3' } } })
const RUNS = Number(values.runs)
const CALLS = Number(values.calls)
const JOINED_S = Number(values.joined)
const SEMI_MB = values.semi === undefined ? undefined : Number(values.semi)
const root = fileURLToPath(new URL('..', import.meta.url))
const home = await mkdtemp(join(tmpdir(), 'mesh-mem-'))
const rssMb = async (pid: number): Promise<number> => Number((await readFile(`/proc/${pid}/status`, 'utf8')).match(/VmRSS:\s+(\d+)/)![1]) / 1024
const IDLE_MS = Number(values.idle) * 1000
const settle = async (ms = 3_000): Promise<void> => { await new Promise((resolve) => setTimeout(resolve, ms)) }

interface Reading { idle: number, called: number, startMs: number }
/** The agent joined to a bootstrap: its RSS after `JOINED_S` seconds idle in the mesh. */
async function measureJoined (bootstrap: string, nodeArgs: string[] = [], env: Record<string, string> = {}): Promise<number> {
  const child = spawn(process.execPath, [...nodeArgs, 'examples/trip-planner/hotels.ts'], { cwd: root, env: { ...process.env, MCP_MESH_HOME: home, MCP_MESH_BOOTSTRAP: bootstrap, MCP_MESH_COLOCATED: 'true', ...env }, stdio: ['ignore', 'pipe', 'inherit'] })
  await new Promise<void>((resolve) => {
    let out = ''
    child.stdout!.on('data', (d: Buffer) => { out += d.toString(); if (/https?:\S+/.test(out)) resolve() })
  })
  await new Promise((resolve) => setTimeout(resolve, JOINED_S * 1000))
  const rss = await rssMb(child.pid!)
  child.kill('SIGKILL')
  await new Promise((resolve) => child.once('exit', resolve))
  return rss
}

async function measure (args: string[], call: boolean, env: Record<string, string> = {}): Promise<Reading> {
  const spawned = performance.now()
  const child = spawn(process.execPath, args, { cwd: root, env: { ...process.env, MCP_MESH_HOME: home, ...env }, stdio: ['ignore', 'pipe', 'inherit'] })
  const url = await new Promise<string>((resolve) => {
    let out = ''
    child.stdout!.on('data', (d: Buffer) => { out += d.toString(); const m = out.match(/(https?:\S+|ready)/); if (m !== null) resolve(m[1]) })
  })
  const startMs = performance.now() - spawned
  await settle(IDLE_MS)
  const idle = await rssMb(child.pid!)
  if (call) {
    const client = new Client({ name: 'mem', version: '1.0.0' })
    // An agent serving mutual TLS is called with an SVID of the same local CA.
    let dispatcher: Agent | undefined
    if (url.startsWith('https:')) {
      const svid = await issueSvid(await LocalCa.open(home, 'mcp-mesh.local', { create: false }), { name: 'mem-client', hosts: [] })
      dispatcher = new Agent({ connect: { cert: svid.certPem, key: svid.keyPem, ca: svid.bundlePem, checkServerIdentity: () => undefined } })
    }
    await client.connect(new StreamableHTTPClientTransport(new URL(url), dispatcher === undefined ? {} : { fetch: (u, init) => undiciFetch(u, { ...init, dispatcher } as never) as never }))
    for (let i = 0; i < CALLS; i++) await client.callTool({ name: 'find_hotels', arguments: { destination: 'Oslo', dates: 'May' } })
    await client.close()
    await settle()
  }
  const called = await rssMb(child.pid!)
  child.kill('SIGKILL')
  await new Promise((resolve) => child.once('exit', resolve))
  return { idle, called, startMs }
}

const runs: Array<{ bare: Reading, sdk: Reading, agent: Reading, plain: Reading, joined?: number, joinedCapped?: number, joinedUntrimmed?: number }> = []
const boot = JOINED_S > 0 ? await startBootstrap({ home, ephemeralKey: true, colocated: true, listen: ['/ip4/127.0.0.1/tcp/0'] }) : undefined
for (let r = 0; r < RUNS; r++) {
  runs.push({
    bare: await measure(['-e', 'console.log("ready"); setInterval(() => {}, 1000)'], false),
    sdk: await measure(['bench/fixtures/sdk-hotels.ts'], true),
    agent: await measure(['examples/trip-planner/hotels.ts'], true),
    plain: await measure(['examples/trip-planner/hotels.ts'], true, { MCP_MESH_TLS_MODE: 'off' }),
    ...(boot === undefined ? {} : { joined: await measureJoined(boot.addrs[0]) }),
    ...(boot === undefined || SEMI_MB === undefined ? {} : { joinedCapped: await measureJoined(boot.addrs[0], [`--max-semi-space-size=${SEMI_MB}`]) }),
    ...(boot === undefined || !values.untrimmed ? {} : { joinedUntrimmed: await measureJoined(boot.addrs[0], [], { MCP_MESH_TRIM_HEAP: 'false' }) }),
  })
}
await boot?.stop()
await rm(home, { recursive: true, force: true })

const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]
const cell = (xs: number[]): string => `${median(xs).toFixed(1)} (${Math.min(...xs).toFixed(1)} to ${Math.max(...xs).toFixed(1)})`
const col = (pick: (r: typeof runs[number]) => number): number[] => runs.map(pick)
console.log(`${RUNS} runs, Node ${process.versions.node}; RSS MB, median (range)\n`)
console.log(`| process | idle (${values.idle} s after start) | after ${CALLS} calls | spawn to serving, ms |`)
console.log('|---|---|---|---|')
console.log(`| bare Node | ${cell(col((r) => r.bare.idle))} | | ${cell(col((r) => r.bare.startMs))} |`)
console.log(`| stock MCP SDK server, hotels tool | ${cell(col((r) => r.sdk.idle))} | ${cell(col((r) => r.sdk.called))} | ${cell(col((r) => r.sdk.startMs))} |`)
console.log(`| mesh agent (examples/trip-planner/hotels.ts: libp2p, gossip, endpoint, client; mutual TLS, "auto") | ${cell(col((r) => r.agent.idle))} | ${cell(col((r) => r.agent.called))} | ${cell(col((r) => r.agent.startMs))} |`)
console.log(`| the same agent with MCP_MESH_TLS_MODE=off | ${cell(col((r) => r.plain.idle))} | ${cell(col((r) => r.plain.called))} | ${cell(col((r) => r.plain.startMs))} |`)
console.log(`| identity and TLS add | ${cell(col((r) => r.agent.idle - r.plain.idle))} | ${cell(col((r) => r.agent.called - r.plain.called))} | ${cell(col((r) => r.agent.startMs - r.plain.startMs))} |`)
if (boot !== undefined) {
  console.log(`| the agent joined to a bootstrap, after ${JOINED_S} s idle | ${cell(col((r) => r.joined!))} | | |`)
  console.log(`| **joined: the mesh adds** (over the SDK server idle) | ${cell(col((r) => r.joined! - r.sdk.idle))} | | |`)
  if (SEMI_MB !== undefined) {
    console.log(`| the agent joined, run with --max-semi-space-size=${SEMI_MB} | ${cell(col((r) => r.joinedCapped!))} | | |`)
    console.log(`| **joined, young generation capped: the mesh adds** (over the SDK server idle) | ${cell(col((r) => r.joinedCapped! - r.sdk.idle))} | | |`)
  }
  if (values.untrimmed) {
    console.log(`| the agent joined, heap trim off (MCP_MESH_TRIM_HEAP=false) | ${cell(col((r) => r.joinedUntrimmed!))} | | |`)
    console.log(`| **joined, heap trim off: the mesh adds** (over the SDK server idle) | ${cell(col((r) => r.joinedUntrimmed! - r.sdk.idle))} | | |`)
  }
}
const addsIdle = col((r) => r.agent.idle - r.sdk.idle)
const addsCalled = col((r) => r.agent.called - r.sdk.called)
console.log(`| **the mesh adds** | ${cell(addsIdle)} | ${cell(addsCalled)} |`)
console.log(`\nthe mesh adds ${median(addsCalled).toFixed(1)} MB over the bare SDK server after ${CALLS} calls (worst run ${Math.max(...addsCalled).toFixed(1)} MB), ${median(addsIdle).toFixed(1)} MB idle ${values.idle} s after start (worst ${Math.max(...addsIdle).toFixed(1)} MB); target: under 20 MB for the mesh itself, under 25 MB with identity and telemetry (both loaded here)`)
await mkdir(new URL('./results/', import.meta.url), { recursive: true })
await writeFile(new URL('./results/memory.json', import.meta.url), JSON.stringify({ at: new Date().toISOString(), node: process.versions.node, calls: CALLS, runs }, null, 2))
