// Hedging and the call options a provider recommends, over real libp2p and real HTTP: a read-only
// call stuck on a slow provider is also sent to another one after `hedgeAfterMs`, the first
// answer wins and the slow provider's handler is cancelled; a tool that may change something is
// never hedged; a provider's advertised timeout, retries and hedging stand in for the caller's
// node defaults, and the caller's own options win over them.
import t from 'tap'
import { MeshError } from '../../src/errors.ts'
import { testMesh } from '../helpers/mesh.ts'
import { waitFor } from '../helpers/wait.ts'

const MESH = `hedging-${process.pid}`
t.setTimeout(120_000)
const { start } = testMesh(t, MESH)
/** Calls the slow providers' handlers started, and saw cancelled. */
const started: Record<string, number> = {}
const cancelled: Record<string, number> = {}
/** A handler that answers at once, or (slow) only when the caller gives up on it. */
const handler = (name: string, slow: boolean) => async (_: unknown, _d: unknown, ctx: { signal: AbortSignal }) => {
  if (!slow) return { by: name }
  started[name] = (started[name] ?? 0) + 1
  await new Promise<void>((resolve) => ctx.signal.addEventListener('abort', () => { resolve() }, { once: true }))
  cancelled[name] = (cancelled[name] ?? 0) + 1
  throw new Error('cancelled')
}
const caller = await start('caller')
for (const [name, slow] of [['fast', false], ['slow', true]] as const) {
  await start(name, (n) => {
    n.tool('lookup', { capability: 'lookup', annotations: { readOnlyHint: true } }, handler(name, slow))
    n.tool('charge', { capability: 'charge' }, handler(name, slow))
    n.tool('advised', { capability: 'advised', annotations: { idempotentHint: true }, defaults: { hedgeAfterMs: 30, timeoutMs: 20_000 } }, handler(name, slow))
  }, caller.gossip.addrs)
}
await start('sluggish', (n) => {
  n.tool('report', { capability: 'report', defaults: { timeoutMs: 150 } }, handler('sluggish', true))
}, caller.gossip.addrs)
await waitFor('the caller to see every provider', () => caller.explain('lookup').ranked.length === 2 && caller.explain('charge').ranked.length === 2 &&
  caller.explain('advised').ranked.length === 2 && caller.explain('report').ranked.length === 1)

t.test('a read-only call stuck on a slow provider is hedged: the fast answer wins, the slow handler is cancelled', async (t) => {
  const lookup = caller.dependency<{ by: string }>({ capability: 'lookup', hedgeAfterMs: 150 })
  const before = { ...caller.stats }
  // Round robin over two providers: 4 calls, 2 of them first to the slow one.
  for (let i = 0; i < 4; i++) {
    const { result, provider } = await lookup.invoke({})
    t.equal(result.by, 'fast', `call ${i + 1}: answered by the fast provider`)
    t.equal(provider.agent, 'fast', `call ${i + 1}: the caller is told who answered`)
  }
  // A fast answer slower than the hedge delay (a loaded machine) is hedged too, to the slow one.
  const hedges = caller.stats.hedges - before.hedges
  t.ok(hedges >= 2, `the 2 calls that went to the slow provider first were hedged (${hedges} hedges)`)
  t.equal(caller.stats.hedgesWon - before.hedgesWon, 2, 'and the hedge answered both')
  t.equal(caller.stats.retries - before.retries, 0, 'a hedge is not a retry')
  // A hedge cancelled before its request reached the slow provider (the fast answer came first)
  // never ran there: every attempt that ran on it lost, and each must see its cancellation.
  t.ok((started.slow ?? 0) >= 2, `the slow provider ran ${started.slow ?? 0} attempts, the 2 first ones at least`)
  await waitFor('the slow handlers to see their cancellation', () => (cancelled.slow ?? 0) === started.slow)
  t.equal(cancelled.slow, started.slow, 'every attempt that lost was cancelled on the provider (MCP cancellation)')
})

t.test('a tool that is neither read-only nor idempotent is never hedged', async (t) => {
  const charge = caller.dependency<{ by: string }>({ capability: 'charge', hedgeAfterMs: 20, timeout: 300 })
  const before = caller.stats.hedges
  const outcomes: string[] = []
  for (let i = 0; i < 2; i++) {
    try {
      outcomes.push((await charge({})).by)
    } catch (err) {
      outcomes.push((err as MeshError).code)
    }
  }
  t.same(outcomes.sort(), ['MESH_ERR_CALL_TIMEOUT', 'fast'], 'the call that went to the slow provider waited for its own timeout')
  t.equal(caller.stats.hedges, before, 'no hedge was sent')
})

t.test('per-call hedgeAfterMs is checked like the other call options', async (t) => {
  const lookup = caller.dependency('lookup')
  await t.rejects(lookup({}, { hedgeAfterMs: -5 }), { code: 'MESH_ERR_RESOLVE_INVALID_SPEC' })
  t.throws(() => caller.dependency({ capability: 'lookup', hedgeAfterMs: 0 }), { code: 'MESH_ERR_RESOLVE_INVALID_SPEC' })
})

t.test('a provider\'s recommended hedging applies with no option on the caller', async (t) => {
  const advised = caller.dependency<{ by: string }>('advised')
  const before = { hedges: caller.stats.hedges, won: caller.stats.hedgesWon }
  for (let i = 0; i < 2; i++) t.equal((await advised({})).by, 'fast', `call ${i + 1}: answered by the fast provider`)
  t.ok(caller.stats.hedges - before.hedges >= 1, 'the call that went to the slow provider first was hedged by the advertised 30 ms')
  t.equal(caller.stats.hedgesWon - before.won, 1, 'and the hedge answered it')
  t.same(caller.explain('advised').ranked[0].tool.defaults, { hedgeAfterMs: 30, timeoutMs: 20_000 }, 'the advert carries the recommendation')
})

t.test('a provider\'s recommended timeout stands in for the node default; the dependency\'s and the call\'s win', async (t) => {
  const timedOutAfter = async (p: Promise<unknown>): Promise<string> => {
    const err = await p.then(() => { throw new Error('the call should time out') }, (e: unknown) => e as MeshError)
    t.equal(err.code, 'MESH_ERR_CALL_TIMEOUT')
    return err.message
  }
  const report = caller.dependency('report')
  t.match(await timedOutAfter(report({})), /after 150 ms/, 'the advertised 150 ms, not the node\'s 30 s')
  t.match(await timedOutAfter(caller.dependency({ capability: 'report', timeout: 250 })({})), /after 250 ms/, 'the dependency\'s own timeout wins')
  t.match(await timedOutAfter(report({}, { timeout: 100 })), /after 100 ms/, 'and the call\'s')
})

t.test('an advert with out-of-range defaults is refused at registration', async (t) => {
  const { createMeshNode } = await import('../../src/node.ts')
  const { testNodeOptions } = await import('../helpers/mesh.ts')
  const n = createMeshNode(testNodeOptions(MESH, 'bad-defaults'))
  t.throws(() => n.tool('x', { defaults: { retries: 50 } }, async () => ({})), { code: 'MESH_ERR_TOOL_INVALID' })
  t.throws(() => n.tool('y', { defaults: { timeoutMs: -1 } }, async () => ({})), { code: 'MESH_ERR_TOOL_INVALID' })
})
