// Red team over real libp2p and real HTTP: members that name foreign endpoints, and providers that
// come and go, as a caller agent sees them.
import t from 'tap'
import { z } from 'zod'
import { generateKeyPair } from '@libp2p/crypto/keys'
import { multiaddr } from '@multiformats/multiaddr'
import { createGossipNode } from '../../src/gossip/gossip-node.ts'
import { createHost, advertTopic } from '../../src/gossip/host.ts'
import { encodeMessage } from '../../src/gossip/codec.ts'
import { parseGossipOptions } from '../../src/config.ts'
import type { GossipNode } from '../../src/gossip/gossip-node.ts'
import type { MeshNode } from '../../src/node.ts'
import { startNode } from '../helpers/mesh.ts'
import { waitFor } from '../helpers/wait.ts'
import { fakeProvider, json } from '../helpers/fake-provider.ts'
import type { FakeProvider } from '../helpers/fake-provider.ts'

const MESH = `hostile-member-${process.pid}`
const nodes: MeshNode[] = []
const members: GossipNode[] = []
const servers: FakeProvider[] = []
t.teardown(async () => {
  await Promise.all([...nodes.map((n) => n.stop()), ...members.map((m) => m.stop())])
  await Promise.all(servers.map((s) => s.close()))
})

const Served = z.object({ by: z.string() })
function serves (capability: string, by: string) {
  return (n: MeshNode): void => {
    n.tool('get', { capability, input: {}, output: { by: z.string() } }, () => ({ by }))
  }
}

const door = await startNode(MESH, 'door', () => {})
nodes.push(door)
const join = { bootstrap: door.gossip.addrs }

/** A gossip-only member (no MCP endpoint of its own) advertising `endpoint` for `capability`. */
async function member (name: string, capability: string, endpoint: string, tags: string[] = []): Promise<GossipNode> {
  const m = createGossipNode({
    mesh: MESH, name, ephemeralKey: true, colocated: true, bootstrap: join.bootstrap,
    advert: { endpoint, tools: [{ name: 'get', capability, version: '9.0.0', tags }] },
  })
  await m.start()
  members.push(m)
  return m
}

t.test('a member announcing 127.0.0.1 with an endpoint on 127.0.0.2 is dropped by every node and never called', async (t) => {
  // What a non-MCP server there answers: "{}" once made the caller throw a plain TypeError.
  const foreign = await fakeProvider({ host: '127.0.0.2', misbehave: (_msg, res) => { json(res, 200, {}); return true } })
  servers.push(foreign)
  nodes.push(await startNode(MESH, 'honest', serves('weather', 'honest'), join))
  const caller = await startNode(MESH, 'caller', () => {}, join)
  nodes.push(caller)
  // Our own nodes refuse to issue such an advert (they fail at start), so the hostile member signs
  // its advert by hand on a raw libp2p host, as an attacker would, and gossips it through the door.
  const key = await generateKeyPair('Ed25519')
  const host = await createHost(parseGossipOptions({ name: 'hostile', mesh: MESH, colocated: true }, {}), key)
  t.teardown(async () => { await host.stop() })
  await host.start()
  await host.dial(multiaddr(door.gossip.addrs[0]))
  host.services.pubsub.subscribe(advertTopic(MESH))
  await waitFor('the door subscribed', () => host.services.pubsub.getSubscribers(advertTopic(MESH)).length > 0, 10_000)
  const advert = {
    v: 1, mesh: MESH, name: 'hostile', role: 'agent', peerId: host.peerId.toString(), incarnation: Date.now(), seq: 0, issuedAt: Date.now(), status: 'alive',
    addrs: host.getMultiaddrs().map(String), endpoint: foreign.url, tools: [{ name: 'get', capability: 'weather', version: '9.0.0', tags: ['claude'] }], dependencies: [],
  }
  const before = door.gossip.stats.dropped['bad-endpoint'] ?? 0
  await host.services.pubsub.publish(advertTopic(MESH), await encodeMessage('advert', advert, MESH, key))
  await waitFor('the door to drop it', () => (door.gossip.stats.dropped['bad-endpoint'] ?? 0) > before, 10_000)
  t.equal(door.gossip.replica.get(host.peerId.toString()), undefined, 'the door does not hold it')
  t.equal(caller.gossip.replica.get(host.peerId.toString()), undefined, 'nor the caller: the door did not forward it')

  const { result, provider } = await caller.dependency({ capability: 'weather', tags: ['+claude'] }).invoke({})
  t.equal(provider.agent, 'honest')
  t.same(Served.parse(result), { by: 'honest' })
  t.same(caller.stats.failed, {}, 'no call failed')
  t.equal(foreign.received.length, 0, 'nothing was sent to 127.0.0.2')
})

t.test('providers that come and go: the caller\'s pools return to what is live', async (t) => {
  const caller = await startNode(MESH, 'churn-caller', () => {}, join)
  nodes.push(caller)
  const churn = caller.dependency('churn')
  const a = await startNode(MESH, 'churn-a', serves('churn', 'churn-a'), join)
  const b = await startNode(MESH, 'churn-b', serves('churn', 'churn-b'), join)
  nodes.push(a, b)
  await waitFor('both providers seen', () => caller.explain('churn').ranked.length === 2, 10_000)
  const served = new Set<string>()
  for (let i = 0; i < 4; i++) served.add(Served.parse(await churn({})).by)
  t.same([...served].sort(), ['churn-a', 'churn-b'])
  t.equal(caller.stats.pools, 2, 'one pool per provider called')

  await a.stop()
  await waitFor('the pool of the provider that left closed', () => caller.stats.pools === 1, 10_000)
  t.same(caller.explain('churn').ranked.map((c) => c.agent), ['churn-b'])

  // A member that moves: the same peer advertises a new endpoint (an agent restarted on a new port).
  const first = await fakeProvider({ name: 'mover-1' })
  const second = await fakeProvider({ name: 'mover-2' })
  servers.push(first, second)
  await b.stop()
  await waitFor('the pool of the second provider that left closed', () => caller.stats.pools === 0, 10_000)
  const tools = [{ name: 'get', capability: 'churn', version: '9.0.0', tags: [] }]
  const mover = await member('mover', 'churn', first.url)
  await waitFor('the mover seen', () => caller.explain('churn').selected?.agent === 'mover', 10_000)
  t.same(Served.parse(await churn({})), { by: 'mover-1' })
  t.equal(caller.stats.pools, 1)
  await mover.updateAdvert({ endpoint: second.url, tools })
  await waitFor('the new endpoint seen', () => caller.explain('churn').selected?.endpoint === second.url, 10_000)
  t.equal(caller.stats.pools, 0, 'the old endpoint\'s pool closed when the new advert arrived')
  t.same(Served.parse(await churn({})), { by: 'mover-2' })
  await mover.stop()
  await waitFor('nothing left open once every provider left', () => caller.stats.pools === 0, 10_000)
  t.equal(caller.stats.avoided, 0)
})
