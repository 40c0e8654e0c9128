// Load balancing among equally ranked providers, over real libp2p and real HTTP: round robin
// spreads 1,000 calls evenly; least outstanding and the power of two choices send most of 16
// concurrent loops' calls to the provider that answers fast, away from one that takes 40 ms;
// weighted splits send 90 % and 10 % of 1,000 calls to two versions, or two tags.
import t from 'tap'
import type { Balance } from '../../src/proxy/mesh-tool.ts'
import { testMesh } from '../helpers/mesh.ts'
import { waitFor } from '../helpers/wait.ts'

const MESH = `balance-${process.pid}`
t.setTimeout(120_000)
const { nodes, start } = testMesh(t, MESH)
const caller = await start('caller', () => {})
for (const name of ['even-1', 'even-2', 'even-3']) await start(name, (n) => n.tool('even', { capability: 'even' }, async () => ({ by: name })), caller.gossip.addrs)
for (const [name, ms] of [['fast', 0], ['slow', 40]] as const) {
  await start(name, (n) => n.tool('work', { capability: 'work' }, async () => {
    if (ms > 0) await new Promise((resolve) => setTimeout(resolve, ms))
    return { by: name }
  }), caller.gossip.addrs)
}
for (const [name, version, tag] of [['stable', '1.4.0', 'stable'], ['canary', '2.0.0', 'canary']] as const) {
  await start(name, (n) => n.tool('rates', { capability: 'rates', version, tags: [tag] }, async () => ({ by: name })), caller.gossip.addrs)
}
await waitFor('the caller to see every provider', () => caller.explain('even').ranked.length === 3 && caller.explain('work').ranked.length === 2 && caller.explain('rates').ranked.length === 2)

t.test('round robin: 1,000 calls spread within 10 % of even', async (t) => {
  const even = caller.dependency<{ by: string }>('even')
  const count: Record<string, number> = {}
  for (let i = 0; i < 1_000; i++) { const { by } = await even({}); count[by] = (count[by] ?? 0) + 1 }
  for (const [by, n] of Object.entries(count)) t.ok(Math.abs(n - 1_000 / 3) <= 1_000 / 3 * 0.1, `${by}: ${n} of 1,000`)
  t.equal(Object.keys(count).length, 3)
})

/** Share of 400 calls from 16 concurrent loops that the fast provider served. */
async function fastShare (balance: Balance): Promise<number> {
  const work = caller.dependency<{ by: string }>({ capability: 'work', balance })
  let fast = 0
  await Promise.all(Array.from({ length: 16 }, async () => {
    for (let i = 0; i < 25; i++) if ((await work({})).by === 'fast') fast++
  }))
  return fast / 400
}

t.test('least outstanding and p2c send most calls to the provider that answers fast', async (t) => {
  const rr = await fastShare('round-robin')
  t.ok(Math.abs(rr - 0.5) <= 0.05, `round robin: ${(rr * 100).toFixed(0)} % to the fast provider, as many as to the slow one`)
  const lo = await fastShare('least-outstanding')
  t.ok(lo >= 0.75, `least outstanding: ${(lo * 100).toFixed(0)} % to the fast provider`)
  const p2c = await fastShare('p2c')
  t.ok(p2c >= 0.75, `power of two choices: ${(p2c * 100).toFixed(0)} % to the fast provider`)
  t.throws(() => caller.dependency({ capability: 'work', balance: 'random' as Balance }), { code: 'MESH_ERR_RESOLVE_INVALID_SPEC' })
})

t.test('weighted splits: 90/10 by version and by tag over 1,000 calls; a branch with no provider is skipped', async (t) => {
  const byVersion = caller.dependency<{ by: string }>({ capability: 'rates', split: [{ weight: 90, version: '^1' }, { weight: 10, version: '^2' }] })
  const byTag = caller.dependency<{ by: string }>({ capability: 'rates', split: [{ weight: 9, tags: ['stable'] }, { weight: 1, tags: ['canary'] }] })
  for (const [how, dep] of [['version', byVersion], ['tag', byTag]] as const) {
    let canary = 0
    for (let i = 0; i < 1_000; i++) if ((await dep({})).by === 'canary') canary++
    t.ok(Math.abs(canary - 100) <= 30, `by ${how}: ${canary} of 1,000 to the canary (target 100, within 3 points)`)
  }
  t.throws(() => caller.dependency({ capability: 'rates', split: [{ weight: 0 }] }), { code: 'MESH_ERR_RESOLVE_INVALID_SPEC' })
  t.throws(() => caller.dependency({ capability: 'rates', split: [{ weight: 1, version: 'not a range' }] }), { code: 'MESH_ERR_RESOLVE_INVALID_SPEC' })
  const canary = nodes.find((n) => n.options.name === 'canary')!
  await canary.stop()
  await waitFor('the canary to leave', () => caller.explain('rates').ranked.length === 1)
  for (let i = 0; i < 20; i++) t.equal((await byVersion({})).by, 'stable', `call ${i + 1}: the stable branch takes every call`)
})
