// Memory by module: what each part of an agent costs to load, in fresh processes (bench/memory.ts
// measures whole processes). Two views:
// - in load order: one process imports the parts in the order an agent needs them, then starts an
//   agent with one tool, with a full GC before each reading (so the heap is what is retained);
// - alone: each part imported by itself in a fresh Node, against that bare Node.
// Columns: RSS; V8 heap committed (what V8 holds, live or not) and used (live after the GC);
// code (bytecode, compiled code and their metadata, part of the heap).
// Usage: node bench/memory-modules.ts [--root <checkout>] (another checkout, for example of main,
// built with npm ci; default this one).
import { spawn } from 'node:child_process'
import { existsSync } from 'node:fs'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import { parseArgs } from 'node:util'

const { values } = parseArgs({ options: { root: { type: 'string' } } })
const root = resolve(values.root ?? fileURLToPath(new URL('..', import.meta.url)))
const bundled = existsSync(join(root, 'dist', 'chunks'))
const hasUndici = !bundled && existsSync(join(root, 'node_modules', 'undici'))

// Runs in the measured process (cwd: the checkout, so bare specifiers resolve from it). Each
// argument is a module to import, or agent:start / agent:idle.
const STEPPER = `
import v8 from 'node:v8'
import { readFileSync } from 'node:fs'
const read = (label) => {
  globalThis.gc(); globalThis.gc()
  const m = process.memoryUsage()
  const c = v8.getHeapCodeStatistics()
  const rss = Number(readFileSync('/proc/self/status', 'utf8').match(/VmRSS:\\s+(\\d+)/)[1]) * 1024
  console.log(JSON.stringify({ label, rss, committed: m.heapTotal, used: m.heapUsed, code: c.code_and_metadata_size + c.bytecode_and_metadata_size }))
}
read('bare Node')
let node
for (const step of process.argv.slice(1)) {
  if (step === 'agent:start') {
    const { createMeshNode } = await import('mcp-mesh-p2p')
    const { z } = await import('zod')
    node = createMeshNode({ name: 'hotels', handleSignals: false })
    node.tool('find_hotels', { capability: 'hotels', input: { destination: z.string(), dates: z.string() },
      output: { hotels: z.array(z.object({ name: z.string(), pricePerNight: z.number() })), by: z.string() } },
      async ({ destination }) => ({ hotels: [{ name: destination, pricePerNight: 100 }], by: 'hotels' }))
    await node.start()
  } else if (step === 'agent:idle') {
    await new Promise((resolve) => setTimeout(resolve, 3000))
  } else {
    await import(step)
  }
  read(step)
}
await node?.stop()
`

interface Reading { label: string, rss: number, committed: number, used: number, code: number }

async function run (steps: string[], home: string): Promise<Reading[]> {
  const child = spawn(process.execPath, ['--expose-gc', '--input-type=module', '-e', STEPPER, ...steps], {
    cwd: root, env: { ...process.env, MCP_MESH_HOME: home }, stdio: ['ignore', 'pipe', 'inherit'],
  })
  let out = ''
  child.stdout.on('data', (d: Buffer) => { out += d.toString() })
  const code = await new Promise<number | null>((resolve) => child.once('exit', resolve))
  if (code !== 0) throw new Error(`the measured process exited with ${code}`)
  return out.split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l) as Reading)
}

const mb = (n: number): string => (n / 1048576).toFixed(1)
const NAMES: Record<string, string> = {
  'node:http': 'node:http (every MCP server has it)',
  '@modelcontextprotocol/sdk/server/mcp.js': 'MCP SDK server (McpServer, types, ajv)',
  'mcp-mesh-p2p': bundled ? 'mcp-mesh-p2p (one bundle: libp2p stack, semver, own code)' : 'mcp-mesh-p2p (own code, and what is left)',
  'agent:start': 'an agent with one tool, started (no peers)',
  'agent:idle': 'idle 3 s',
}
const row = (label: string, d: Omit<Reading, 'label'>): string =>
  `| ${NAMES[label] ?? label} | ${mb(d.rss)} | ${mb(d.committed)} | ${mb(d.used)} | ${mb(d.code)} |`

const SHARED = ['node:http', '@modelcontextprotocol/sdk/server/mcp.js', 'zod']
const MESH = bundled
  ? ['mcp-mesh-p2p']
  : [...(hasUndici ? ['undici'] : []), 'libp2p', '@libp2p/tcp', '@libp2p/noise', '@libp2p/yamux', '@libp2p/identify', '@libp2p/gossipsub', 'semver', 'mcp-mesh-p2p']

const home = await mkdtemp(join(tmpdir(), 'mesh-mem-modules-'))
try {
  console.log(`${root} (${bundled ? 'bundled' : 'unbundled'} dist/), Node ${process.versions.node}\n`)
  console.log('In load order, one process (each row: what that step added)\n')
  console.log('| step | RSS MB | heap committed MB | heap used MB | code MB |')
  console.log('|---|---|---|---|---|')
  const seq = await run([...SHARED, ...MESH, 'agent:start', 'agent:idle'], home)
  for (let i = 0; i < seq.length; i++) {
    const r = seq[i]
    const p = i === 0 ? { rss: 0, committed: 0, used: 0, code: 0 } : seq[i - 1]
    console.log(row(r.label, { rss: r.rss - p.rss, committed: r.committed - p.committed, used: r.used - p.used, code: r.code - p.code }))
  }
  const sharedEnd = seq[SHARED.length]
  const last = seq[seq.length - 1]
  console.log(row('the mesh in all (everything after zod)', { rss: last.rss - sharedEnd.rss, committed: last.committed - sharedEnd.committed, used: last.used - sharedEnd.used, code: last.code - sharedEnd.code }))

  console.log('\nAlone, each in a fresh process (what it added to a bare Node)\n')
  console.log('| module | RSS MB | heap committed MB | heap used MB | code MB |')
  console.log('|---|---|---|---|---|')
  for (const m of [...SHARED, ...MESH]) {
    const [bare, after] = await run([m], home)
    console.log(row(m, { rss: after.rss - bare.rss, committed: after.committed - bare.committed, used: after.used - bare.used, code: after.code - bare.code }))
  }
} finally {
  await rm(home, { recursive: true, force: true })
}
