// Sessions over real libp2p and real HTTP: a dependency declared with `session: true` keeps every
// call of one session key on the provider of its first call (the provider sees the key), and
// when that provider is gone the call fails with MESH_ERR_CALL_SESSION_LOST instead of moving.
import t from 'tap'
import { testMesh } from '../helpers/mesh.ts'
import { waitFor } from '../helpers/wait.ts'

const MESH = `sessions-${process.pid}`
t.setTimeout(60_000)
const { nodes, start } = testMesh(t, MESH)
const caller = await start('caller', () => {})
for (const name of ['cart-1', 'cart-2']) {
  await start(name, (n) => n.tool('cart', { capability: 'cart' }, async (_a, _d, ctx) => ({ by: name, session: ctx.headers['mcp-mesh-session'] })), caller.gossip.addrs)
}
await waitFor('the caller to see both providers', () => caller.explain('cart').ranked.length === 2)
const cart = caller.dependency<{ by: string, session?: string }>({ capability: 'cart', session: true })

t.test('each session stays on the provider of its first call; the provider gets the key', async (t) => {
  const first = await cart({}, { session: 'alpha' })
  t.equal(first.session, 'alpha', 'the provider sees the session key')
  for (let i = 0; i < 20; i++) t.equal((await cart({}, { session: 'alpha' })).by, first.by, `alpha, call ${i + 2}: same provider`)
  const beta = await cart({}, { session: 'beta' })
  for (let i = 0; i < 5; i++) t.equal((await cart({}, { session: 'beta' })).by, beta.by, `beta, call ${i + 2}: same provider`)
  await t.rejects(cart({}), { code: 'MESH_ERR_RESOLVE_INVALID_SPEC', message: /pass the session key/ }, 'a session dependency needs the key')
})

t.test('the provider of a session leaves: the session is lost, never moved; a new one starts elsewhere', async (t) => {
  const { by } = await cart({}, { session: 'alpha' })
  const other = by === 'cart-1' ? 'cart-2' : 'cart-1'
  await nodes.find((n) => n.options.name === by)!.stop()
  await waitFor('the caller to see it leave', () => caller.explain('cart').ranked.length === 1)
  await t.rejects(cart({}, { session: 'alpha' }), { code: 'MESH_ERR_CALL_SESSION_LOST', details: { session: 'alpha', provider: by } })
  t.equal(caller.stats.failed.MESH_ERR_CALL_SESSION_LOST, 1, 'counted under its own code')
  cart.endSession('alpha')
  t.equal((await cart({}, { session: 'alpha' })).by, other, 'after endSession, the session starts again on the other provider')
})
