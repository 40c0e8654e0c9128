// Measures the per-hop CPU costs the model simulation charges, on the real stack (libp2p,
// gossipsub, the mesh's codec, probing and sync over @libp2p/memory in one process):
// - messageMs: CPU per node to take in one new advert (gossipsub, decode, verify, merge, forward,
//   and the duplicates each node receives), from advert updates spread through N nodes;
// - frameMs: CPU per probe or sync frame received, from idle traffic (probing and anti-entropy);
// - connectMs: CPU per connection set-up at each end, from repeated dials between two hosts.
// Writes bench/results/calibration.json, which bench/model.ts reads.
// Usage: node bench/calibrate.ts [--nodes 100]
import { mkdir, writeFile } from 'node:fs/promises'
import { parseArgs } from 'node:util'
import os from 'node:os'
import { memory } from '@libp2p/memory'
import { plaintext } from '@libp2p/plaintext'
import { noise } from '@libp2p/noise'
import { generateKeyPair } from '@libp2p/crypto/keys'
import { Simulation } from '../test/sim/harness.ts'
import { converge } from '../test/sim/scenarios.ts'
import { createHost } from '../src/gossip/host.ts'
import { parseGossipOptions } from '../src/config.ts'
import type { ModelCosts } from '../test/sim/model/network.ts'

const { values } = parseArgs({ options: { nodes: { type: 'string', default: '100' } } })
const N = Number(values.nodes)
const sleep = async (ms: number): Promise<void> => { await new Promise((resolve) => setTimeout(resolve, ms)) }
const cpuMs = (since: NodeJS.CpuUsage): number => { const c = process.cpuUsage(since); return (c.user + c.system) / 1000 }

/** CPU per connection at each end: dial and hang up between two hosts, many times. */
async function connectCost (encryption: 'plaintext' | 'noise'): Promise<number> {
  const mesh = `calib-${process.pid}-${encryption}`
  const hosts = await Promise.all(['a', 'b'].map(async (name) => {
    const h = await createHost(parseGossipOptions({ name, mesh, colocated: true, listen: [`/memory/${mesh}-${name}`] }, {}), await generateKeyPair('Ed25519'), {
      transports: [memory()],
      connectionEncrypters: [encryption === 'noise' ? noise() : plaintext()],
    })
    await h.start()
    return h
  }))
  const [a, b] = hosts
  const rounds = 200
  for (let i = 0; i < 20; i++) { await a.dial(b.getMultiaddrs()[0]); await a.hangUp(b.peerId) } // warm up
  const c0 = process.cpuUsage()
  for (let i = 0; i < rounds; i++) { await a.dial(b.getMultiaddrs()[0]); await a.hangUp(b.peerId) }
  const ms = cpuMs(c0) / rounds / 2
  await Promise.all(hosts.map(async (h) => h.stop()))
  return ms
}

const sim = new Simulation({ seed: 11 })
let costs: ModelCosts
let detail: Record<string, number>
try {
  await converge(sim, N)
  await sleep(3_000)
  const nodes = sim.up()
  const probes = (): number => nodes.reduce((s, m) => s + m.node.stats.probes, 0)
  // Idle: probing and anti-entropy only. Frames received per probe: a ping and an ack (2);
  // anti-entropy: a digest and its answer (2) per sync.
  const framesIn = (): number => nodes.reduce((s, m) => s + 2 * m.node.stats.probes + 2 * m.node.stats.syncs, 0)
  const f0 = framesIn()
  const p0 = probes()
  const idle0 = process.cpuUsage()
  const t0 = performance.now()
  await sleep(5_000)
  const idleSecs = (performance.now() - t0) / 1000
  const idleCpuPerS = cpuMs(idle0) / idleSecs
  const framesPerS = (framesIn() - f0) / idleSecs
  const probesPerS = (probes() - p0) / idleSecs
  const frameMs = idleCpuPerS / framesPerS
  // Advert updates: each reaches every other node once (plus duplicates); subtract idle CPU.
  const updates = 10
  let spreadCpu = 0
  let received = 0
  for (let i = 0; i < updates; i++) {
    const m = sim.up('agent')[i]
    const before = nodes.reduce((s, x) => s + x.node.stats.accepted, 0)
    const c0 = process.cpuUsage()
    const s0 = performance.now()
    await m.node.updateAdvert({ tools: [{ name: 'tool', capability: `${m.capability}`, version: `1.0.${i + 1}`, tags: [] }] })
    await sim.until('the update to reach everyone', () => nodes.every((x) => x === m || x.node.replica.get(m.node.peerId)?.advert.tools[0]?.version === `1.0.${i + 1}`), 30_000, 2)
    spreadCpu += cpuMs(c0) - idleCpuPerS * (performance.now() - s0) / 1000
    received += nodes.reduce((s, x) => s + x.node.stats.accepted, 0) - before
    await sleep(300)
  }
  const messageMs = spreadCpu / received
  const connectPlain = await connectCost('plaintext')
  const connectNoise = await connectCost('noise')
  costs = { messageMs, duplicateMs: 0, frameMs, connectMs: connectPlain }
  detail = { nodes: N, idleCpuMsPerS: idleCpuPerS, framesPerS, probesPerS, updates, received, connectNoiseMs: connectNoise, connectPlaintextMs: connectPlain }
} finally {
  await sim.stop()
}

const f = (x: number): string => x.toFixed(3)
console.log(`per-hop CPU on the real stack (${N} nodes, @libp2p/memory), ${os.cpus().length} cores, Node ${process.versions.node}`)
console.log('| cost | ms |')
console.log('|---|---|')
console.log(`| new gossip message taken in, per node (duplicates included) | ${f(costs.messageMs)} |`)
console.log(`| stream frame received (probe, ack, sync) | ${f(costs.frameMs)} |`)
console.log(`| connection set-up per end, plaintext (the harness) | ${f(costs.connectMs)} |`)
console.log(`| connection set-up per end, Noise (production) | ${f(detail.connectNoiseMs)} |`)
await mkdir(new URL('./results/', import.meta.url), { recursive: true })
await writeFile(new URL('./results/calibration.json', import.meta.url), JSON.stringify({ at: new Date().toISOString(), node: process.versions.node, cores: os.cpus().length, costs, detail }, null, 2))
process.exit(0)
