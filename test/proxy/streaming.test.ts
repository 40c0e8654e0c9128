// Streaming calls between real agents: real libp2p, real HTTPS with mutual TLS (the default).
// A provider emits parts (`ctx.emit`); the caller reads them with `dependency.stream(args)`, then
// the final result. Parts pass through an intermediate agent (`ctx.pipe`), and an agent's own
// tool streams in process. A consumer that leaves the loop cancels the provider's handler. Once a
// part has arrived, a provider lost mid-stream is MESH_ERR_CALL_STREAM_BROKEN, never a failover;
// before the first part, the call fails over as any other.
//
// Nothing here waits for time: a gated provider emits part i, then waits until the caller's loop
// has seen part i, so a stream that were delivered only at the end would hang, not pass.
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t from 'tap'
import { z } from 'zod'
import { createMeshNode } from '../../src/node.ts'
import type { MeshNode } from '../../src/node.ts'
import type { MeshNodeOptionsInput } from '../../src/config.ts'
import { testNodeOptions } from '../helpers/mesh.ts'
import { waitFor } from '../helpers/wait.ts'

const MESH = `stream-${process.pid}`
t.setTimeout(180_000)
const home = await mkdtemp(join(tmpdir(), 'mesh-stream-'))
const nodes: MeshNode[] = []
t.teardown(async () => {
  await Promise.all(nodes.map(async (n) => n.stop()))
  await rm(home, { recursive: true, force: true })
})

async function start (name: string, define: (n: MeshNode) => void, extra: Partial<MeshNodeOptionsInput> = {}): Promise<MeshNode> {
  const n = createMeshNode(testNodeOptions(MESH, name, { home, tls: { mode: 'strict' }, callTimeoutMs: 60_000, ...extra }))
  define(n)
  nodes.push(n)
  await n.start()
  await n.ready()
  return n
}

// Gates: how many parts of each gated stream the caller's loop has seen.
const seenParts = new Map<string, number>()
const wakers = new Set<() => void>()
/** The caller's loop saw the next part of `gate`. */
function saw (gate: string): void {
  seenParts.set(gate, (seenParts.get(gate) ?? 0) + 1)
  for (const w of [...wakers]) w()
}
/** Resolves once the caller has seen part `i` of `gate`, or `signal` aborts. */
async function seen (gate: string, i: number, signal: AbortSignal): Promise<void> {
  while ((seenParts.get(gate) ?? 0) <= i && !signal.aborted) {
    await new Promise<void>((resolve) => {
      const wake = (): void => { wakers.delete(wake); signal.removeEventListener('abort', wake); resolve() }
      wakers.add(wake)
      signal.addEventListener('abort', wake, { once: true })
    })
  }
}
const aborted = async (signal: AbortSignal): Promise<void> => new Promise((resolve) => {
  if (signal.aborted) resolve()
  else signal.addEventListener('abort', () => { resolve() }, { once: true })
})

/** Emits `n` parts `{ i }`, each gated on the caller when `gate` is given, then `{ total: n }`. */
const count = { input: { n: z.number().int().min(0), gate: z.string().optional() }, streaming: true }
async function counting ({ n, gate }: { n: number, gate?: string | undefined }, ctx: { emit: (p: unknown) => Promise<void>, signal: AbortSignal }): Promise<{ total: number }> {
  for (let i = 0; i < n; i++) {
    await ctx.emit({ i })
    if (gate !== undefined) await seen(gate, i, ctx.signal)
  }
  return { total: n }
}

/** Providers of `feed` that hold their call (after `before` parts) until stopped; who served what. */
const holding = new Set<string>()
const feedServedBy: string[] = []
let endless: { parts: number, aborted: boolean, reason?: unknown } = { parts: 0, aborted: false }
const feed = { capability: 'feed', streaming: true, annotations: { readOnlyHint: true }, input: { before: z.number().int() } }

const counter = await start('counter', (n) => {
  n.tool('count', { capability: 'count', ...count }, async (args, _d, ctx) => await counting(args, ctx))
  n.tool('endless', { streaming: true, input: { gate: z.string() } }, async ({ gate }, _d, ctx) => {
    for (let i = 0; !ctx.signal.aborted; i++) {
      await ctx.emit({ i })
      endless.parts++
      await seen(gate, i, ctx.signal)
    }
    endless.aborted = true
    endless.reason = ctx.signal.reason
    return { stopped: true }
  })
  n.tool('steady_feed', feed, async (_a, _d, ctx) => {
    feedServedBy.push('counter')
    for (let i = 0; i < 3; i++) await ctx.emit({ i, from: 'counter' })
    return { from: 'counter' }
  })
})
const join_ = { bootstrap: counter.gossip.addrs }
const relay = await start('relay', (n) => {
  // An intermediate agent: one line passes the downstream stream through.
  n.tool('relay', { ...count, dependencies: { down: { capability: 'count', streaming: true } } }, async (args, { down }, ctx) => await ctx.pipe(down.stream(args)))
  // Its own streaming tool, and one that streams it in process.
  n.tool('local_count', { capability: 'local_count', ...count }, async (args, _d, ctx) => await counting(args, ctx))
  n.tool('relay_local', { ...count, dependencies: { mine: { capability: 'local_count', streaming: true } } }, async (args, { mine }, ctx) => await ctx.pipe(mine.stream(args)))
}, join_)
const plain = await start('plain', (n) => {
  n.tool('count', { capability: 'count', input: count.input }, async () => ({ total: 0, plain: true }))
  n.tool('solo', {}, async () => 'not a stream')
}, join_)
const diers = new Map<string, MeshNode>()
for (const name of ['dier1', 'dier2']) {
  diers.set(name, await start(name, (n) => n.tool('feed', { ...feed, tags: [name] }, async ({ before }, _d, ctx) => {
    feedServedBy.push(name)
    for (let i = 0; i < before; i++) await ctx.emit({ i, from: name })
    holding.add(name)
    await aborted(ctx.signal)
    return { from: name }
  }), { ...join_, drainGraceMs: 0 }))
}
const caller = await start('caller', () => {}, join_)
await waitFor('the caller and the relay to see every provider', () =>
  caller.explain('count').explanation.length === 2 && caller.explain('feed').ranked.length === 3 &&
  caller.explain('relay').ranked.length === 1 && caller.explain('relay_local').ranked.length === 1 &&
  caller.explain('endless').ranked.length === 1 && caller.explain('solo').ranked.length === 1 &&
  relay.explain({ capability: 'count', streaming: true }).ranked.length === 1, 60_000)

/** Reads a stream to its end, marking each part seen on `gate`; the parts and the final result. */
async function drain<R> (s: AsyncIterable<unknown> & { result: Promise<R> }, gate?: string): Promise<{ parts: unknown[], result: R }> {
  const parts: unknown[] = []
  for await (const p of s) {
    parts.push(p)
    if (gate !== undefined) saw(gate)
  }
  return { parts, result: await s.result }
}
const upTo = (n: number): Array<{ i: number }> => Array.from({ length: n }, (_, i) => ({ i }))

t.test('parts arrive in order while the provider runs, then the final result', async (t) => {
  const count = caller.dependency<{ total: number }>({ capability: 'count', streaming: true })
  const s = count.stream({ n: 5, gate: 'direct' })
  const { parts, result } = await drain(s, 'direct')
  t.same(parts, upTo(5), 'each part, once, in order')
  t.same(result, { total: 5 })
  t.equal(s.provider?.agent, 'counter', 'served by the streaming provider')
  t.same(await count({ n: 2 }), { total: 2 }, 'a plain call of a streaming tool returns the result alone')
})

t.test('a streaming dependency does not resolve a provider whose tool does not stream', async (t) => {
  const r = caller.explain({ capability: 'count', streaming: true })
  t.same(r.ranked.map((c) => c.agent), ['counter'])
  t.match(r.explanation.find((row) => row.agent === 'plain')?.reasons, [/does not stream partial results/], 'explain says why plain is out')
  await t.rejects(caller.dependency({ capability: 'solo', streaming: true }).stream({}).next(), { code: 'MESH_ERR_CALL_NO_PROVIDER', message: /does not stream partial results/ })
  t.same(await caller.call('solo'), [{ type: 'text', text: 'not a stream' }], 'without streaming: true it resolves')
})

t.test('three hops: the parts pass through the intermediate agent in order, then the result', async (t) => {
  const s = caller.dependency<{ total: number }>({ capability: 'relay', streaming: true }).stream({ n: 4, gate: 'relayed' })
  const { parts, result } = await drain(s, 'relayed')
  t.same(parts, upTo(4))
  t.same(result, { total: 4 })
  t.equal(s.provider?.agent, 'relay')
})

t.test('a tool of the agent itself streams in process, and through its endpoint to a caller', async (t) => {
  const own = relay.dependency<{ total: number }>({ capability: 'local_count', streaming: true })
  const s = own.stream({ n: 3, gate: 'local' })
  t.same(await drain(s, 'local'), { parts: upTo(3), result: { total: 3 } })
  t.ok(s.provider?.local, 'run in process')
  const remote = caller.dependency<{ total: number }>({ capability: 'relay_local', streaming: true }).stream({ n: 3, gate: 'local-relayed' })
  t.same(await drain(remote, 'local-relayed'), { parts: upTo(3), result: { total: 3 } }, 'in-process parts piped out over MCP')
})

t.test('the consumer leaving the loop cancels the provider\'s handler', async (t) => {
  endless = { parts: 0, aborted: false }
  const s = caller.dependency({ capability: 'endless', streaming: true }).stream({ gate: 'endless' })
  const got: unknown[] = []
  for await (const p of s) {
    got.push(p)
    if (got.length === 3) break
    saw('endless')
  }
  t.same(got, upTo(3))
  await t.rejects(s.result, { code: 'MESH_ERR_ABORTED' })
  await waitFor('the provider\'s handler signal to abort', () => endless.aborted)
  t.ok(endless.parts <= 4, `the handler stopped (${endless.parts} parts emitted, 3 read)`)
})

t.test('a provider lost after 2 parts: MESH_ERR_CALL_STREAM_BROKEN, no failover', async (t) => {
  const failovers = caller.stats.failovers
  const retries = caller.stats.retries
  const s = caller.dependency({ capability: 'feed', streaming: true, tags: ['+dier1'] }).stream({ before: 2 })
  const got: unknown[] = []
  let stopping: Promise<void> | undefined
  await t.rejects((async () => {
    for await (const p of s) {
      got.push(p)
      if (got.length === 2) stopping = diers.get('dier1')!.stop()
    }
  })(), {
    code: 'MESH_ERR_CALL_STREAM_BROKEN',
    details: { partsReceived: 2, provider: { agent: 'dier1' } },
  })
  await stopping
  t.same(got, [{ i: 0, from: 'dier1' }, { i: 1, from: 'dier1' }], 'the two parts, then the error')
  t.same(feedServedBy, ['dier1'], 'not sent to another provider (the tool is read-only: a plain call would fail over)')
  t.equal(caller.stats.failovers, failovers, 'no failover')
  t.equal(caller.stats.retries, retries, 'no retry')
  t.equal(caller.stats.failed.MESH_ERR_CALL_STREAM_BROKEN, 1, 'counted under its own code')
})

t.test('a provider lost before its first part: the stream fails over to another provider', async (t) => {
  feedServedBy.length = 0
  const failovers = caller.stats.failovers
  const s = caller.dependency<{ from: string }>({ capability: 'feed', streaming: true, tags: ['+dier2'] }).stream({ before: 0 })
  await waitFor('dier2 to hold the call', () => holding.has('dier2'))
  const stopping = diers.get('dier2')!.stop()
  const { parts, result } = await drain(s)
  await stopping
  t.same(parts, [0, 1, 2].map((i) => ({ i, from: 'counter' })), 'every part, from the provider that took over')
  t.same(result, { from: 'counter' })
  t.same(feedServedBy, ['dier2', 'counter'])
  t.ok(caller.stats.failovers > failovers, 'counted as a failover')
})
