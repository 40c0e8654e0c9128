// Rate limits on the provider side, over real libp2p and real HTTP: a tool's rateLimit refuses a
// caller past its rate before the handler runs, with MESH_ERR_CALL_RATE_LIMITED and when to retry;
// the caller tries another provider at once, and with retries waits as long as it was told.
import t from 'tap'
import { testMesh } from '../helpers/mesh.ts'
import { waitFor } from '../helpers/wait.ts'

const MESH = `ratelimit-${process.pid}`
t.setTimeout(60_000)
const { nodes, start } = testMesh(t, MESH)
const ran: Record<string, number> = {}
const caller = await start('caller')
const limited = await start('limited', (n) => n.tool('quote', { capability: 'quote', rateLimit: { perMinute: 120, burst: 3 } }, async () => {
  ran.limited = (ran.limited ?? 0) + 1
  return { by: 'limited' }
}), caller.gossip.addrs)
await waitFor('the caller to see the provider', () => caller.explain('quote').ranked.length === 1)

t.test('past its burst a caller is refused before the handler runs, and told when to retry', async (t) => {
  for (let i = 0; i < 3; i++) t.same(await caller.call('quote'), { by: 'limited' }, `call ${i + 1} of the burst`)
  const err = await caller.call('quote').catch((e: unknown) => e) as { code: string, message: string, details: { retryAfterMs: number } }
  t.equal(err.code, 'MESH_ERR_CALL_RATE_LIMITED')
  t.match(err.message, /has used its rate of calls of quote/)
  t.ok(err.details.retryAfterMs > 0 && err.details.retryAfterMs <= 500, `retry after ${err.details.retryAfterMs} ms (2 calls a second)`)
  t.equal(ran.limited, 3, 'the refused call did not run')
  t.equal(limited.endpointStats.dropped['rate-limited'], 1, 'the provider counted it')
})

t.test('with retries, the caller waits as long as it was told, then the call passes', async (t) => {
  const start = Date.now()
  t.same(await caller.dependency({ capability: 'quote', retries: 1 })({}), { by: 'limited' })
  t.ok(Date.now() - start >= 300, `it waited for the provider's rate (${Date.now() - start} ms)`)
})

t.test('a provider that refused for its rate is tried last for a while: another takes the calls', async (t) => {
  await start('spare', (n) => n.tool('quote', { capability: 'quote' }, async () => ({ by: 'spare' })), caller.gossip.addrs)
  await waitFor('the caller to see both', () => caller.explain('quote').ranked.length === 2)
  const before = ran.limited
  const quote = caller.dependency<{ by: string }>('quote')
  for (let i = 0; i < 10; i++) t.equal((await quote({})).by, 'spare', `call ${i + 1} served by the spare`)
  t.equal(ran.limited, before, 'the limited provider, which refused a call within the last 10 s, was not asked again')
  t.equal(nodes.length, 3)
})
