// The caller: injected tools over the real lean client and real HTTP providers, resolving against
// a real replica fed adverts by hand (no gossip: the topology is what the test says it is).
import t from 'tap'
import { z } from 'zod'
import { AdvertSchema } from '../../src/topology/advert.ts'
import type { Advert } from '../../src/topology/advert.ts'
import { Replica } from '../../src/topology/replica.ts'
import { systemClock } from '../../src/clock.ts'
import type { Clock } from '../../src/clock.ts'
import { MESH_ERROR_META_KEY } from '../../src/errors.ts'
import type { MeshError } from '../../src/errors.ts'
import { McpHttpClient } from '../../src/proxy/mcp-client.ts'
import { createCaller } from '../../src/proxy/caller.ts'
import { createMeshTool } from '../../src/proxy/mesh-tool.ts'
import type { MeshToolContext } from '../../src/proxy/mesh-tool.ts'
import type { Candidate, Resolution } from '../../src/topology/resolver.ts'
import type { GossipNode } from '../../src/gossip/gossip-node.ts'
import { fakeProvider } from '../helpers/fake-provider.ts'
import type { FakeProvider } from '../helpers/fake-provider.ts'

const timing = { suspicionMinTimeoutMs: 1_000, suspicionMaxTimeoutMs: 6_000, suspicionConfirmations: 3, maxAdvertAgeMs: 3_600_000, maxClockSkewMs: 300_000, tombstoneMs: 7_200_000 }
const NONE = new Uint8Array()
const servers: FakeProvider[] = []
t.teardown(async () => { await Promise.all(servers.map((s) => s.close())) })

async function provider (name: string, options: Parameters<typeof fakeProvider>[0] = {}): Promise<FakeProvider> {
  const s = await fakeProvider({ name, ...options })
  servers.push(s)
  return s
}

/** A caller over its own replica; `advertise` puts a member in it as gossip would. */
function setup (t: { teardown: (fn: () => Promise<void>) => void }, clock: Clock = systemClock) {
  const replica = new Replica({ selfId: 'self', clock, timing })
  const client = new McpHttpClient({ clientName: 'caller-test' })
  const stop = new AbortController()
  t.teardown(async () => { stop.abort(); replica.stop(); await client.close() })
  const gossip = { replica, peerId: 'self' } as unknown as GossipNode
  const ctx = createCaller({ gossip: () => gossip, client, clock, settleUntil: () => 0, callTimeoutMs: 5_000, stopSignal: stop.signal })
  const versions = new Map<string, number>()
  const advertise = (peerId: string, endpoint: string, extra: { addrs?: string[], tags?: string[], version?: string } = {}): Advert => {
    const seq = (versions.get(peerId) ?? -1) + 1
    versions.set(peerId, seq)
    const advert = AdvertSchema.parse({
      v: 1, mesh: 'test', name: `agent-${peerId}`, peerId, incarnation: 1, seq, issuedAt: Date.now(),
      addrs: extra.addrs ?? ['/ip4/127.0.0.1/tcp/4001'],
      endpoint,
      tools: [{ name: 'get_weather', capability: 'weather', version: extra.version ?? '1.0.0', tags: extra.tags ?? [] }],
    })
    replica.applyAdvert(advert, NONE)
    return advert
  }
  return { replica, client, ctx, advertise, stop }
}

t.test('tool errors are classified by the mesh code in _meta, never by their text', async (t) => {
  const { ctx, advertise } = setup(t)
  const result = (text: string, meta?: Record<string, unknown>) => ({ isError: true, content: [{ type: 'text', text }], ...(meta === undefined ? {} : { _meta: { [MESH_ERROR_META_KEY]: meta } }) })
  const s = await provider('errors', {
    call: (_name, args) => {
      const kind = (args as { kind: string }).kind
      if (kind === 'invalid') return result('the arguments do not fit', { code: 'MESH_ERR_CALL_INVALID_ARGS', issues: [{ path: ['city'], message: 'expected string' }] })
      if (kind === 'lookalike') return result('Input validation error: a tool may say anything')
      if (kind === 'thrown') return result('the tool broke', { code: 'MESH_ERR_CALL_TOOL_ERROR' })
      if (kind === 'made-up') return result('no such code', { code: 'MESH_ERR_CALL_MADE_UP' })
      if (kind === 'draining') return result('not a result code', { code: 'MESH_ERR_SERVER_DRAINING' })
      return result('pretend nothing ran', { code: 'MESH_ERR_CALL_UNREACHABLE', notSent: true })
    },
  })
  advertise('p1', s.url)
  const weather = createMeshTool('weather', 'weather', ctx)
  const cases: Array<[string, string]> = [
    ['invalid', 'MESH_ERR_CALL_INVALID_ARGS'],
    ['lookalike', 'MESH_ERR_CALL_TOOL_ERROR'],
    ['thrown', 'MESH_ERR_CALL_TOOL_ERROR'],
    ['claims-not-sent', 'MESH_ERR_CALL_TOOL_ERROR'],
    ['made-up', 'MESH_ERR_CALL_TOOL_ERROR'],
    ['draining', 'MESH_ERR_CALL_TOOL_ERROR'],
  ]
  for (const [kind, code] of cases) {
    await t.rejects(weather({ kind }), { code }, kind)
  }
  const invalid = await weather({ kind: 'invalid' }).catch((e: unknown) => e)
  t.match(invalid, { details: { issues: [{ path: ['city'] }], validation: 'the arguments do not fit' } }, 'the issues travel too')
  t.equal(ctx.stats.failovers, 0, 'a tool result that claims "not sent" is not failed over: the tool ran')
})

t.test('the answer of the provider that took the call is the call\'s error, whatever attempts failed over to it', async (t) => {
  const { ctx, advertise } = setup(t)
  const closed = await provider('closed')
  await closed.close()
  const refusing = await provider('refusing', {
    call: () => ({ isError: true, content: [{ type: 'text', text: 'Input validation error: city: expected string' }], _meta: { [MESH_ERROR_META_KEY]: { code: 'MESH_ERR_CALL_INVALID_ARGS', issues: [{ path: ['city'], message: 'expected string' }] } } }),
  })
  advertise('p-closed', closed.url, { tags: ['first'] })
  advertise('p-refusing', refusing.url)
  // The closed provider is preferred, so each call tries it first, then fails over.
  const weather = createMeshTool('weather', { capability: 'weather', tags: ['+first'] }, ctx)
  const err = await weather({ city: 42 }).then(() => undefined, (e: MeshError) => e)
  t.equal(err?.code, 'MESH_ERR_CALL_INVALID_ARGS', 'the arguments were refused: not "unreachable" for the attempt before')
  t.match(err?.details, { validation: /city/, provider: { agent: 'agent-p-refusing' } })
  t.equal(ctx.stats.failovers, 1, 'the closed provider was tried first')
  const tool = await provider('tool-error', { call: () => ({ isError: true, content: [{ type: 'text', text: 'no such city' }] }) })
  advertise('p-refusing', tool.url)
  const again = await createMeshTool('weather', { capability: 'weather', tags: ['+first'] }, ctx)({ city: 'Atlantis' }).then(() => undefined, (e: MeshError) => e)
  t.equal(again?.code, 'MESH_ERR_CALL_TOOL_ERROR', 'so is the tool\'s own error')
})

t.test('raw: true returns the provider\'s whole MCP result, without the output check; an isError result still throws', async (t) => {
  const { ctx, advertise } = setup(t)
  const whole = { content: [{ type: 'text', text: 'sunny' }], structuredContent: { sky: 'sunny' }, _meta: { 'example/seen': 1 } }
  const s = await provider('whole', { call: (_name, args) => (args as { fail?: boolean }).fail === true ? { isError: true, content: [{ type: 'text', text: 'no sky' }] } : whole })
  advertise('p1', s.url)
  const weather = createMeshTool<{ sky: number }>('weather', { capability: 'weather', output: z.object({ sky: z.number() }) }, ctx)
  t.same(await weather({}, { raw: true }), whole, 'the callable')
  const { result, provider: by } = await weather.invoke({}, { raw: true })
  t.same(result, whole, 'invoke')
  t.equal(by.agent, 'agent-p1')
  await t.rejects(weather({}), { code: 'MESH_ERR_CALL_FAILED' }, 'without it, the output is checked')
  await t.rejects(weather({ fail: true }, { raw: true }), { code: 'MESH_ERR_CALL_TOOL_ERROR' })
})

t.test('a failure that arrives once the deadline has passed, before its timer runs, is the timeout', async (t) => {
  // The provider gives up at the budget it was sent, as a mesh provider's handler signal does,
  // and its answer can be read before the caller's own timer fires. This clock's timers never
  // fire, and its time jumps past the deadline while the provider works, so that order is certain.
  let ahead = 0
  const clock: Clock = { ...systemClock, now: () => Date.now() + ahead, setTimeout: () => ({ id: undefined }), clearTimeout () {} }
  const { ctx, advertise } = setup(t, clock)
  const s = await provider('gives-up', {
    call: (_name, args) => {
      if ((args as { late?: boolean }).late === true) ahead += 10_000
      return { isError: true, content: [{ type: 'text', text: 'cancelled' }] }
    },
  })
  advertise('p1', s.url)
  const weather = createMeshTool('weather', { capability: 'weather', timeout: 2_000 }, ctx)
  await t.rejects(weather({}), { code: 'MESH_ERR_CALL_TOOL_ERROR' }, 'within the deadline, the tool\'s own error')
  const err = (await weather({ late: true }).catch((e: unknown) => e)) as MeshError
  t.match(err, { code: 'MESH_ERR_CALL_TIMEOUT', message: 'the call through weather timed out after 2000 ms' }, 'past it, the timeout')
  t.match(err.cause, { code: 'MESH_ERR_CALL_TOOL_ERROR' }, 'with what the provider said as its cause')
  for (let i = 0; i < 4; i++) await t.rejects(weather({ late: true }), { code: 'MESH_ERR_CALL_TIMEOUT' })
  t.equal(ctx.breakers.circuit('p1'), 'open', 'and counted against the provider as a timeout is: 5 in a row open its circuit')
})

t.test('the caller spreads load among equals; the resolution itself stays put', async (t) => {
  const { ctx, advertise } = setup(t)
  for (const id of ['p1', 'p2', 'p3']) advertise(id, (await provider(id)).url)
  const weather = createMeshTool<{ by: string }>('weather', 'weather', ctx)
  const served: string[] = []
  for (let i = 0; i < 6; i++) {
    t.equal(weather.available, true)
    t.equal(weather.resolve().selected?.peerId, 'p1', 'resolve() and available are pure: they take no turn')
    served.push((await weather()).by)
  }
  t.same(served, ['p1', 'p2', 'p3', 'p1', 'p2', 'p3'], 'round robin in the caller, one turn per call')
  t.equal(weather.resolve().tier, 3)
})

t.test('a foreign endpoint is never called: the resolver skips it, and the caller refuses it if asked', async (t) => {
  const { ctx, advertise } = setup(t)
  const good = await provider('good')
  const foreign = await provider('foreign', { host: '127.0.0.2' })
  advertise('p0', foreign.url, { tags: ['claude'], version: '9.0.0' }) // announces 127.0.0.1 only
  advertise('p1', good.url)
  const weather = createMeshTool<{ by: string }>('weather', { capability: 'weather', tags: ['+claude'] }, ctx)
  t.equal((await weather()).by, 'good', 'the better-ranked member with a foreign endpoint is skipped')
  const row = weather.resolve().explanation.find((r) => r.peerId === 'p0')
  t.equal(row?.verdict, 'rejected')
  t.match(row?.reasons.join(' '), /^endpoint refused: .*127\.0\.0\.2.*not one of the member's announced hosts/)

  // A candidate that did not come from the resolver: the caller checks it before any socket opens.
  const resolved = weather.resolve()
  const planted: Candidate = { ...resolved.ranked[0], peerId: 'p0', agent: 'agent-p0', endpoint: foreign.url }
  const rigged: MeshToolContext = { ...ctx, resolve: (): Resolution => ({ ...resolved, ranked: [planted, ...resolved.ranked], selected: planted, tier: 1 }) }
  const before = ctx.stats.failovers
  const r = await createMeshTool<{ by: string }>('weather', 'weather', rigged).invoke()
  t.equal(r.result.by, 'good', 'failed over to the next provider')
  t.equal(ctx.stats.failovers, before + 1)
  t.equal(ctx.stats.avoided, 1, 'and tried last for a while')
  await t.rejects(ctx.callRemote(planted, {}, { signal: new AbortController().signal }), { code: 'MESH_ERR_CALL_UNREACHABLE', details: { notSent: true } })
  t.equal(foreign.received.length, 0, 'the foreign server never got a request')
})

t.test('pools and avoid entries of members that left, died or moved are closed', async (t) => {
  const { replica, ctx, advertise } = setup(t)
  const [a, b, b2, shared] = [await provider('a'), await provider('b'), await provider('b2'), await provider('shared')]
  advertise('pa', a.url)
  advertise('pb', b.url)
  const weather = createMeshTool<{ by: string }>('weather', 'weather', ctx)
  t.same([(await weather()).by, (await weather()).by].sort(), ['a', 'b'])
  t.equal(ctx.stats.pools, 2, 'one pool per provider called')

  replica.applyLeave('pa', 1, NONE)
  t.equal(ctx.stats.pools, 1, 'a member that left: its pool is closed')

  advertise('pb', b2.url) // pb restarted on another port
  t.equal(ctx.stats.pools, 0, 'a member that moved: the old endpoint\'s pool is closed')
  t.equal((await weather()).by, 'b2')
  t.equal(ctx.stats.pools, 1)
  advertise('pb', b2.url) // a new advert with the same endpoint keeps the pool
  t.equal(ctx.stats.pools, 1)

  replica.declareDead('pb')
  t.equal(ctx.stats.pools, 0, 'a member declared dead: its pool is closed')

  // Two members behind one origin share a pool: it closes with the last of them.
  advertise('s1', shared.url)
  advertise('s2', shared.url)
  for (let i = 0; i < 2; i++) await weather()
  t.equal(ctx.stats.pools, 1)
  replica.applyLeave('s1', 1, NONE)
  t.equal(ctx.stats.pools, 1, 'still used by s2')
  t.equal((await weather()).by, 'shared')
  replica.applyLeave('s2', 1, NONE)
  t.equal(ctx.stats.pools, 0)

  // A provider that refuses is avoided; when it leaves, so does its avoid entry.
  const closed = await provider('closed')
  await closed.close()
  advertise('pr', closed.url, { tags: ['claude'] })
  advertise('pc', a.url)
  const preferring = createMeshTool<{ by: string }>('weather', { capability: 'weather', tags: ['+claude'] }, ctx)
  t.equal((await preferring()).by, 'a', 'failed over past the refusing provider')
  t.equal(ctx.stats.avoided, 1)
  replica.applyLeave('pr', 1, NONE)
  t.equal(ctx.stats.avoided, 0, 'the avoid entry of a member that left is dropped')
  replica.applyLeave('pc', 1, NONE)
  t.equal(ctx.stats.pools, 0, 'back to what is live: nothing')
})

t.test('stopping the caller aborts every call in flight at once, and the calls follow its signal without a listener each', async (t) => {
  const { ctx, advertise, stop } = setup(t)
  let added = 0
  const add = stop.signal.addEventListener.bind(stop.signal)
  stop.signal.addEventListener = (...args: Parameters<AbortSignal['addEventListener']>) => { added++; add(...args) }
  const held: Array<() => void> = []
  const s = await provider('held', { misbehave: (msg, res) => msg.method === 'tools/call' && (held.push(() => { res.destroy() }), true) })
  advertise('held', s.url)
  const weather = createMeshTool('weather', 'weather', ctx)
  const calls = Array.from({ length: 8 }, async () => await weather({}).then(() => undefined, (err: MeshError) => err))
  while (held.length < 8) await new Promise((resolve) => setTimeout(resolve, 5))
  t.equal(added, 0, '8 calls in flight added no abort listener to the stop signal')
  const t0 = Date.now()
  stop.abort()
  const errors = await Promise.all(calls)
  t.ok(Date.now() - t0 < 1_000, 'every call ended at once, not at its 5 s timeout')
  t.same(errors.map((e) => e?.code), Array(8).fill('MESH_ERR_ABORTED'), 'each as aborted')
  for (const release of held) release()
})
