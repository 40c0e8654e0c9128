// Memory of one agent process with everything the mesh loads by default (libp2p, gossipsub, the
// endpoint, the client) versus a bare stock MCP SDK server offering the same tool, and a bare Node.
// Each runs as its own process; RSS is read from /proc after start-up and 200 calls.
// Usage: node bench/memory.ts
import { spawn } from 'node:child_process'
import { readFile, mkdir, writeFile, mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { Client } from '@modelcontextprotocol/sdk/client/index.js'
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js'

const root = fileURLToPath(new URL('..', import.meta.url))
const home = await mkdtemp(join(tmpdir(), 'mesh-mem-'))
const rssMb = async (pid: number): Promise<number> => Number((await readFile(`/proc/${pid}/status`, 'utf8')).match(/VmRSS:\s+(\d+)/)![1]) / 1024

async function measure (args: string[], call: boolean): Promise<number> {
  const child = spawn(process.execPath, args, { cwd: root, env: { ...process.env, MCP_MESH_HOME: home }, stdio: ['ignore', 'pipe', 'inherit'] })
  const url = await new Promise<string>((resolve) => {
    let out = ''
    child.stdout!.on('data', (d: Buffer) => { out += d.toString(); const m = out.match(/(http\S+|ready)/); if (m !== null) resolve(m[1]) })
  })
  if (call) {
    const client = new Client({ name: 'mem', version: '1.0.0' })
    await client.connect(new StreamableHTTPClientTransport(new URL(url)))
    for (let i = 0; i < 200; i++) await client.callTool({ name: 'find_hotels', arguments: { destination: 'Oslo', dates: 'May' } })
    await client.close()
  }
  await new Promise((resolve) => setTimeout(resolve, 3_000))
  const mb = await rssMb(child.pid!)
  child.kill('SIGKILL')
  await new Promise((resolve) => child.once('exit', resolve))
  return mb
}

const bare = await measure(['-e', 'console.log("ready"); setInterval(() => {}, 1000)'], false)
const sdk = await measure(['bench/fixtures/sdk-hotels.ts'], true)
const agent = await measure(['examples/trip-planner/hotels.ts'], true)
await rm(home, { recursive: true, force: true })
console.log('| process | RSS MB |')
console.log('|---|---|')
console.log(`| bare Node ${process.versions.node} | ${bare.toFixed(1)} |`)
console.log(`| stock MCP SDK server, hotels tool | ${sdk.toFixed(1)} |`)
console.log(`| mesh agent (examples/trip-planner/hotels.ts: libp2p, gossip, endpoint, client) | ${agent.toFixed(1)} |`)
console.log(`\nthe mesh adds ${(agent - sdk).toFixed(1)} MB over the bare SDK server (target: under 25 MB)`)
await mkdir(new URL('./results/', import.meta.url), { recursive: true })
await writeFile(new URL('./results/memory.json', import.meta.url), JSON.stringify({ at: new Date().toISOString(), node: process.versions.node, bareMb: bare, sdkMb: sdk, agentMb: agent }, null, 2))
