// Calls benchmark, side by side in one run: a mesh call versus the stock MCP SDK client and server
// (stateful sessions, its fastest set-up) and versus a raw HTTP request carrying the same JSON.
// HTTP/1.1 keep-alive on loopback: plain for the comparison with the SDK and raw HTTP, and the mesh
// again with mutual TLS (its default) to show what TLS costs; the same keep-alive pool size on every client (undici for raw HTTP and the SDK, http.Agent in the mesh
// client), each server in its own process (its CPU per call is read
// from the process, the clients' from this one). Sequential and 16 in flight; rounds are interleaved, the median round is shown.
// Usage: node bench/calls.ts [--calls 3000] [--rounds 3] [--concurrency 16]
import { fork } from 'node:child_process'
import type { ChildProcess } from 'node:child_process'
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { createSecureContext } from 'node:tls'
import { parseArgs } from 'node:util'
import os from 'node:os'
import { Agent, Pool, fetch as undiciFetch } from 'undici'
import { z } from 'zod'
import { Client } from '@modelcontextprotocol/sdk/client/index.js'
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js'
import { McpHttpClient } from '../src/proxy/mcp-client.ts'
import { createMeshNode } from '../src/node.ts'
import { LocalCa } from '../src/identity/local-ca.ts'
import { issueSvid } from '../src/identity/svid.ts'

const { values } = parseArgs({ options: { calls: { type: 'string', default: '3000' }, rounds: { type: 'string', default: '3' }, concurrency: { type: 'string', default: '16' } } })
const CALLS = Number(values.calls)
const ROUNDS = Number(values.rounds)
const CONC = Number(values.concurrency)
const MESH = `bench-calls-${process.pid}`
const ARGS = { text: 'Lisbon, 2026-12-01 to 2026-12-05: what is the weather like?' }
// The mutual-TLS server and callers share a local CA, as agents on one host do.
const HOME = await mkdtemp(join(os.tmpdir(), 'bench-calls-'))
process.env.MCP_MESH_HOME = HOME

interface Server { proc: ChildProcess, url: string, addrs?: string[], cpu(): Promise<number> }
async function startServer (kind: string): Promise<Server> {
  const proc = fork(new URL('./fixtures/call-server.ts', import.meta.url), [kind, MESH], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] })
  const ready = await new Promise<{ url: string, addrs?: string[] }>((resolve) => proc.once('message', resolve as never))
  return {
    proc,
    ...ready,
    cpu: async () => new Promise((resolve) => {
      proc.once('message', (m: { usage: NodeJS.CpuUsage }) => resolve((m.usage.user + m.usage.system) / 1000))
      proc.send({ cmd: 'cpu' })
    }),
  }
}

type Call = () => Promise<unknown>
const pool = (url: string): Pool => new Pool(new URL(url).origin, { connections: CONC, keepAliveTimeout: 30_000 })

async function rawClient (url: string): Promise<Call> {
  const p = pool(url)
  let id = 0
  return async () => {
    const res = await p.request({ path: '/mcp', method: 'POST', headers: { 'content-type': 'application/json', accept: 'application/json, text/event-stream' }, body: JSON.stringify({ jsonrpc: '2.0', id: ++id, method: 'tools/call', params: { name: 'echo', arguments: ARGS } }) })
    return await res.body.json()
  }
}
async function sdkClient (url: string): Promise<Call> {
  // The same undici settings; one more connection, since the stateful client holds a GET stream open.
  const dispatcher = new Agent({ connections: CONC + 1, keepAliveTimeout: 30_000 })
  const client = new Client({ name: 'bench', version: '1.0.0' })
  await client.connect(new StreamableHTTPClientTransport(new URL(url), { fetch: (u, init) => undiciFetch(u, { ...init, dispatcher } as never) as never }))
  return async () => await client.callTool({ name: 'echo', arguments: ARGS })
}
/** The TLS a lean client calls the mutual-TLS server with: an SVID of the shared local CA. */
async function clientTls (): Promise<{ trustDomain: string, context: () => import('node:tls').SecureContext }> {
  const svid = await issueSvid(await LocalCa.open(HOME, 'mcp-mesh.local', { create: false }), { name: 'bench-lean', hosts: [] })
  const context = createSecureContext({ cert: svid.certPem, key: svid.keyPem, ca: svid.bundlePem, minVersion: 'TLSv1.3' })
  return { trustDomain: 'mcp-mesh.local', context: () => context }
}
async function leanClient (url: string, tls = false): Promise<Call> {
  const client = new McpHttpClient({ clientName: 'bench', connections: CONC, ...(tls ? { tls: await clientTls() } : {}) })
  return async () => await client.callTool(url, 'echo', ARGS, {})
}
/** A new client per call: the TCP connection, the TLS handshake when there is one, initialize, the call. */
async function coldClient (url: string, tls = false): Promise<Call> {
  const t = tls ? await clientTls() : undefined
  return async () => {
    const client = new McpHttpClient({ clientName: 'bench', connections: 1, ...(t === undefined ? {} : { tls: t }) })
    try {
      return await client.callTool(url, 'echo', ARGS, {})
    } finally {
      await client.close()
    }
  }
}
async function meshCaller (addrs: string[], tls = false): Promise<Call> {
  const node = createMeshNode({ mesh: MESH, name: tls ? 'bench-caller-tls' : 'bench-caller', ephemeralKey: true, colocated: true, handleSignals: false, bootstrap: addrs, settleMs: 10_000, ...(tls ? {} : { tls: { mode: 'off' as const } }) })
  await node.start()
  await node.ready()
  const echo = node.dependency<{ text: string }>({ capability: tls ? 'echo-tls' : 'echo', output: z.object({ text: z.string() }) })
  return async () => await echo(ARGS)
}

const pct = (xs: number[], p: number): number => {
  const s = [...xs].sort((a, b) => a - b)
  return s[Math.min(s.length - 1, Math.ceil((p / 100) * s.length) - 1)]
}
interface Result { p50: number, p99: number, perSecond: number, serverCpuUs: number, clientCpuUs: number }
async function measure (call: Call, server: Server, concurrency: number, calls = CALLS, warmUp = 300): Promise<Result> {
  for (let i = 0; i < warmUp; i++) await call() // warm-up: JIT, pools, sessions
  const lat: number[] = []
  const cpu0 = await server.cpu()
  const own0 = process.cpuUsage()
  const t0 = performance.now()
  let next = 0
  await Promise.all(Array.from({ length: concurrency }, async () => {
    while (next++ < calls) {
      const s = performance.now()
      await call()
      lat.push(performance.now() - s)
    }
  }))
  const elapsed = performance.now() - t0
  const own = process.cpuUsage(own0)
  const cpu = await server.cpu() - cpu0
  return { p50: pct(lat, 50), p99: pct(lat, 99), perSecond: calls / (elapsed / 1000), serverCpuUs: (cpu * 1000) / calls, clientCpuUs: (own.user + own.system) / calls }
}

const servers = { raw: await startServer('raw'), sdk: await startServer('sdk'), mesh: await startServer('mesh'), mtls: await startServer('mesh-mtls') }
const clients: Record<string, { call: Call, server: Server }> = {
  'raw HTTP, same JSON': { call: await rawClient(servers.raw.url), server: servers.raw },
  'stock MCP SDK (stateful)': { call: await sdkClient(servers.sdk.url), server: servers.sdk },
  'mesh: lean client': { call: await leanClient(servers.mesh.url), server: servers.mesh },
  'mesh: injected tool': { call: await meshCaller(servers.mesh.addrs!), server: servers.mesh },
  'mesh, mutual TLS: lean client': { call: await leanClient(servers.mtls.url, true), server: servers.mtls },
  'mesh, mutual TLS: injected tool': { call: await meshCaller(servers.mtls.addrs!, true), server: servers.mtls },
}
// Connection set-up: a new client per call (no pool), plain and with the TLS 1.3 handshake.
const cold: Record<string, { call: Call, server: Server }> = {
  'mesh: new connection per call': { call: await coldClient(servers.mesh.url), server: servers.mesh },
  'mesh, mutual TLS: new connection per call': { call: await coldClient(servers.mtls.url, true), server: servers.mtls },
}
const COLD_CALLS = Math.max(50, Math.round(CALLS / 10))
const coldRounds: Record<string, Result[]> = {}
const rounds: Record<string, { seq: Result[], par: Result[] }> = {}
for (let r = 0; r < ROUNDS; r++) {
  for (const [name, { call, server }] of Object.entries(clients)) {
    rounds[name] ??= { seq: [], par: [] }
    rounds[name].seq.push(await measure(call, server, 1))
    rounds[name].par.push(await measure(call, server, CONC))
  }
  for (const [name, { call, server }] of Object.entries(cold)) (coldRounds[name] ??= []).push(await measure(call, server, 1, COLD_CALLS, 20))
}
const median = (rs: Result[]): Result => [...rs].sort((a, b) => a.perSecond - b.perSecond)[Math.floor(rs.length / 2)]
const rows = Object.entries(rounds).map(([name, r]) => ({ name, seq: median(r.seq), par: median(r.par) }))
const f = (n: number, d = 2): string => n.toFixed(d)
console.log(`\n${CALLS} calls per measurement, median of ${ROUNDS} interleaved rounds, ${os.cpus().length} cores, Node ${process.versions.node}`)
console.log('| client and server | seq p50 ms | seq p99 ms | seq calls/s | server CPU/call µs | x16 p50 ms | x16 p99 ms | x16 calls/s | server CPU/call µs | x16 client CPU/call µs |')
console.log('|---|---|---|---|---|---|---|---|---|---|')
for (const { name, seq, par } of rows) {
  console.log(`| ${name} | ${f(seq.p50, 3)} | ${f(seq.p99, 3)} | ${f(seq.perSecond, 0)} | ${f(seq.serverCpuUs, 0)} | ${f(par.p50, 3)} | ${f(par.p99, 3)} | ${f(par.perSecond, 0)} | ${f(par.serverCpuUs, 0)} | ${f(par.clientCpuUs, 0)} |`)
}
const by = Object.fromEntries(rows.map((r) => [r.name, r]))
const mesh = by['mesh: injected tool']
console.log(`\nmesh injected call vs stock SDK, sequential: ${f(mesh.seq.perSecond / by['stock MCP SDK (stateful)'].seq.perSecond, 1)}x calls/s (target 3x)`)
const tlsMesh = by['mesh, mutual TLS: injected tool']
console.log(`mutual TLS on a pooled connection: injected call p50 +${f((tlsMesh.seq.p50 - mesh.seq.p50) * 1000, 0)} µs over plain; x16 ${f(tlsMesh.par.perSecond, 0)} calls/s against ${f(mesh.par.perSecond, 0)}; server CPU per call ${f(tlsMesh.par.serverCpuUs, 0)} µs against ${f(mesh.par.serverCpuUs, 0)}`)
const coldRows = Object.entries(coldRounds).map(([name, r]) => ({ name, seq: median(r) }))
for (const { name, seq } of coldRows) console.log(`${name}: p50 ${f(seq.p50, 3)} ms, p99 ${f(seq.p99, 3)} ms, server CPU ${f(seq.serverCpuUs, 0)} µs per connection and call (${COLD_CALLS} calls)`)
const rawPar = by['raw HTTP, same JSON'].par
console.log(`16 in flight: injected call ${f(mesh.par.perSecond, 0)} calls/s, ${f((100 * mesh.par.perSecond) / rawPar.perSecond, 0)} % of raw HTTP (target 85 %); CPU per call, client + server: raw ${f(rawPar.clientCpuUs + rawPar.serverCpuUs, 0)} µs, lean ${f(by['mesh: lean client'].par.clientCpuUs + by['mesh: lean client'].par.serverCpuUs, 0)} µs, injected ${f(mesh.par.clientCpuUs + mesh.par.serverCpuUs, 0)} µs`)
console.log(`mesh injected call p50 over raw HTTP: +${f((mesh.seq.p50 - by['raw HTTP, same JSON'].seq.p50) * 1000, 0)} µs (target under 100 µs); lean client: +${f((by['mesh: lean client'].seq.p50 - by['raw HTTP, same JSON'].seq.p50) * 1000, 0)} µs`)
await mkdir(new URL('./results/', import.meta.url), { recursive: true })
await writeFile(new URL('./results/calls.json', import.meta.url), JSON.stringify({ at: new Date().toISOString(), node: process.versions.node, cores: os.cpus().length, calls: CALLS, rounds: ROUNDS, concurrency: CONC, rows, cold: coldRows }, null, 2))
for (const s of Object.values(servers)) s.proc.kill()
await rm(HOME, { recursive: true, force: true })
process.exit(0)
