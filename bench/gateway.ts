// Gateway benchmark: what `meshctl gateway` costs a host. An echo agent runs as its own process
// under mutual TLS (the defaults, a local CA in a throwaway MCP_MESH_HOME) and is the seed the
// others join through. Sequential calls of it, in interleaved rounds:
// - direct: a mesh node in this process calls the agent (an injected dependency, one hop);
// - through the gateway over stdio: this process is the host, an MCP SDK client that spawned it;
// - through the gateway over Streamable HTTP (`--http 127.0.0.1:0`), the same client over HTTP.
// Each round also times the gateway's start-up, from spawn to its first `tools/list` that holds
// the agent's tool (over stdio: spawn, join, initialize, list; over HTTP: until it prints its URL,
// then connect and list). The gateway's CPU per call is read from /proc.
// Usage: node bench/gateway.ts [--calls 2000] [--rounds 3] [--warmup 200]
import { fork, spawn } from 'node:child_process'
import type { ChildProcess } from 'node:child_process'
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import os from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { parseArgs } from 'node:util'
import { z } from 'zod'
import { Client } from '@modelcontextprotocol/sdk/client/index.js'
import { StdioClientTransport } from '@modelcontextprotocol/sdk/client/stdio.js'
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js'
import { createMeshNode } from '../src/node.ts'

const { values } = parseArgs({ options: { calls: { type: 'string', default: '2000' }, rounds: { type: 'string', default: '3' }, warmup: { type: 'string', default: '200' } } })
const CALLS = Number(values.calls)
const ROUNDS = Number(values.rounds)
const WARMUP = Number(values.warmup)
const MESH = `bench-gateway-${process.pid}`
const TOOL = 'echo-tls' // the capability the fixture agent offers under mutual TLS
const ARGS = { text: 'Lisbon, 2026-12-01 to 2026-12-05: what is the weather like?' }
const root = fileURLToPath(new URL('..', import.meta.url))
const HOME = await mkdtemp(join(os.tmpdir(), 'bench-gateway-'))
process.env.MCP_MESH_HOME = HOME // the agent, the gateway and the direct caller share the local CA

const agent = fork(new URL('./fixtures/call-server.ts', import.meta.url), ['mesh-mtls', MESH], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] })
const { addrs } = await new Promise<{ addrs: string[] }>((resolve) => agent.once('message', resolve as never))
const gatewayArgs = ['bin/meshctl.js', 'gateway', '--bootstrap', addrs[0], '--mesh', MESH]
const gatewayEnv = { ...process.env, MCP_MESH_HOME: HOME, NO_COLOR: '1' } as Record<string, string>

/** CPU time of a process so far (user and system), in ms, from /proc. */
async function cpuMs (pid: number): Promise<number> {
  const fields = (await readFile(`/proc/${pid}/stat`, 'utf8')).replace(/^.*\) /, '').split(' ')
  return ((Number(fields[11]) + Number(fields[12])) * 1000) / 100 // utime and stime, in ticks of 1/100 s (USER_HZ)
}

type Call = () => Promise<unknown>
interface Path { call: Call, pid?: number, close: () => Promise<void>, startMs?: number }

/** Lists until the agent's tool is there: the first complete list a host sees. */
async function firstCompleteList (client: Client): Promise<void> {
  while (!(await client.listTools()).tools.some((t) => t.name === TOOL)) await new Promise((resolve) => setTimeout(resolve, 10))
}
function toolCall (client: Client): Call {
  return async () => {
    const r = await client.callTool({ name: TOOL, arguments: ARGS })
    if (r.isError === true) throw new Error(`the call failed: ${JSON.stringify(r.content)}`)
    return r
  }
}
async function stdioGateway (): Promise<Path> {
  const t0 = performance.now()
  const transport = new StdioClientTransport({ command: process.execPath, args: gatewayArgs, cwd: root, env: gatewayEnv, stderr: 'ignore' })
  const client = new Client({ name: 'bench-host', version: '1.0.0' })
  await client.connect(transport)
  await firstCompleteList(client)
  return { call: toolCall(client), pid: transport.pid!, close: async () => { await client.close() }, startMs: performance.now() - t0 }
}
async function httpGateway (): Promise<Path> {
  const t0 = performance.now()
  const proc: ChildProcess = spawn(process.execPath, [...gatewayArgs, '--http', '127.0.0.1:0'], { cwd: root, env: gatewayEnv, stdio: ['ignore', 'ignore', 'pipe'] })
  const url = await new Promise<string>((resolve, reject) => {
    let err = ''
    proc.stderr!.on('data', (d: Buffer) => { err += d.toString(); const m = /at (http:\S+)/.exec(err); if (m !== null) resolve(m[1]) })
    proc.once('exit', (code) => { reject(new Error(`the gateway exited (${code}): ${err}`)) })
  })
  const client = new Client({ name: 'bench-host', version: '1.0.0' })
  await client.connect(new StreamableHTTPClientTransport(new URL(url)))
  await firstCompleteList(client)
  const startMs = performance.now() - t0
  return {
    call: toolCall(client),
    pid: proc.pid!,
    startMs,
    close: async () => {
      await client.close()
      const exited = new Promise((resolve) => proc.once('exit', resolve))
      proc.kill('SIGTERM')
      await exited
    },
  }
}
const caller = createMeshNode({ mesh: MESH, name: 'bench-direct', ephemeralKey: true, colocated: true, handleSignals: false, bootstrap: addrs, settleMs: 10_000 })
await caller.start()
await caller.ready()
const echo = caller.dependency<{ text: string }>({ capability: TOOL, output: z.object({ text: z.string() }) })
const direct: Path = { call: async () => await echo(ARGS), close: async () => {} }

const pct = (xs: number[], p: number): number => {
  const s = [...xs].sort((a, b) => a - b)
  return s[Math.min(s.length - 1, Math.ceil((p / 100) * s.length) - 1)]
}
interface Result { p50: number, p99: number, perSecond: number, gatewayCpuUs?: number, startMs?: number }
async function measure (path: Path): Promise<Result> {
  for (let i = 0; i < WARMUP; i++) await path.call() // JIT, pools, the gateway's connection to the agent
  const lat: number[] = []
  const cpu0 = path.pid === undefined ? 0 : await cpuMs(path.pid)
  const t0 = performance.now()
  for (let i = 0; i < CALLS; i++) {
    const s = performance.now()
    await path.call()
    lat.push(performance.now() - s)
  }
  const elapsed = performance.now() - t0
  const cpu = path.pid === undefined ? undefined : await cpuMs(path.pid) - cpu0
  return { p50: pct(lat, 50), p99: pct(lat, 99), perSecond: CALLS / (elapsed / 1000), ...(cpu === undefined ? {} : { gatewayCpuUs: (cpu * 1000) / CALLS }), ...(path.startMs === undefined ? {} : { startMs: path.startMs }) }
}

const starts = { 'direct: a mesh node in this process': async () => direct, 'gateway over stdio': stdioGateway, 'gateway over Streamable HTTP': httpGateway }
const rounds: Record<string, Result[]> = {}
for (let r = 0; r < ROUNDS; r++) {
  for (const [name, start] of Object.entries(starts)) {
    const path = await start()
    try {
      (rounds[name] ??= []).push(await measure(path))
    } finally {
      await path.close()
    }
  }
}

const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]
const f = (n: number, d = 2): string => n.toFixed(d)
const range = (xs: number[], d = 0): string => `${f(median(xs), d)} (${f(Math.min(...xs), d)} to ${f(Math.max(...xs), d)})`
console.log(`\n${CALLS} sequential calls per measurement after ${WARMUP} warm-up calls, ${ROUNDS} interleaved rounds: median (range); ${os.cpus().length} cores, Node ${process.versions.node}, mutual TLS`)
console.log('| path | p50 ms | p99 ms | calls/s | gateway CPU per call, µs | spawn to first complete tools/list, ms |')
console.log('|---|---|---|---|---|---|')
for (const [name, rs] of Object.entries(rounds)) {
  const col = (pick: (x: Result) => number | undefined): number[] => rs.map(pick).filter((x): x is number => x !== undefined)
  const opt = (xs: number[], d = 0): string => xs.length === 0 ? '' : range(xs, d)
  console.log(`| ${name} | ${range(col((x) => x.p50), 3)} | ${range(col((x) => x.p99), 3)} | ${range(col((x) => x.perSecond))} | ${opt(col((x) => x.gatewayCpuUs))} | ${opt(col((x) => x.startMs))} |`)
}
const d = median(rounds['direct: a mesh node in this process'].map((x) => x.p50))
for (const name of ['gateway over stdio', 'gateway over Streamable HTTP']) {
  console.log(`${name}: p50 +${f((median(rounds[name].map((x) => x.p50)) - d) * 1000, 0)} µs over the direct call`)
}
await mkdir(new URL('./results/', import.meta.url), { recursive: true })
await writeFile(new URL('./results/gateway.json', import.meta.url), JSON.stringify({ at: new Date().toISOString(), node: process.versions.node, cores: os.cpus().length, calls: CALLS, rounds: ROUNDS, warmup: WARMUP, results: rounds }, null, 2))
await caller.stop()
agent.kill()
await rm(HOME, { recursive: true, force: true })
process.exit(0)
