// Admission to the mesh's own protocols, over real libp2p (TCP, Noise) with real certificates from
// real local CAs: members that prove an SVID of the trust domain bound to their peer ID gossip,
// sync and probe; a stranger can neither offer tools, nor read the topology, nor probe.
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t from 'tap'
import { generateKeyPair } from '@libp2p/crypto/keys'
import { multiaddr } from '@multiformats/multiaddr'
import { createGossipNode } from '../../src/gossip/gossip-node.ts'
import type { GossipNode } from '../../src/gossip/gossip-node.ts'
import { ADMIT_TIMEOUT_MS, admissionProtocol } from '../../src/gossip/gate.ts'
import { createHost, advertTopic } from '../../src/gossip/host.ts'
import { lpFrames } from '../../src/gossip/libp2p-net.ts'
import { probeProtocol, MAX_PROBE_FRAME_BYTES } from '../../src/gossip/probe.ts'
import { syncProtocol } from '../../src/gossip/sync.ts'
import { parseGossipOptions } from '../../src/config.ts'
import { LocalCa } from '../../src/identity/local-ca.ts'
import { issueSvid } from '../../src/identity/svid.ts'
import type { IssuedSvid } from '../../src/identity/svid.ts'
import { memberAdmitter } from '../../src/identity/start.ts'
import { svidAdmitter } from '../../src/identity/admission.ts'
import { waitFor } from '../helpers/wait.ts'

type TapTest = Parameters<Parameters<typeof t.test>[0]>[0]
const MESH = `admit-${process.pid}`
const TD = 'acme.test'
t.setTimeout(180_000)

const homes: string[] = []
const tempHome = async (): Promise<string> => { const h = await mkdtemp(join(tmpdir(), 'mesh-admit-')); homes.push(h); return h }
t.teardown(async () => { await Promise.all(homes.map(async (h) => rm(h, { recursive: true, force: true }))) })

const ours = await LocalCa.open(await tempHome(), TD, { create: true })
// A partner's CA that issues names in our trust domain, and a CA of a domain nobody here trusts.
const impostor = await LocalCa.open(await tempHome(), TD, { create: true })
const foreign = await LocalCa.open(await tempHome(), 'evil.test', { create: true })

const pemsOf = (s: IssuedSvid) => ({ certPem: s.certPem, keyPem: s.keyPem, bundlePem: s.bundlePem })
const svid = async (ca: LocalCa, name: string, extra: { now?: number, ttlMs?: number } = {}) => issueSvid(ca, { name, hosts: [], ...extra })

const nodes: GossipNode[] = []
t.teardown(async () => { await Promise.all(nodes.map(async (n) => n.stop())) })

const timing = { suspicionMinTimeoutMs: 300, suspicionMaxTimeoutMs: 1500 }
/** A member of our trust domain. */
function member (name: string, credentials: IssuedSvid, extra: { bootstrap?: string[], role?: 'bootstrap', capability?: string } = {}): GossipNode {
  const pems = pemsOf(credentials)
  const n = createGossipNode({
    name, mesh: MESH, ephemeralKey: true, colocated: true, timing,
    ...(extra.role === undefined ? {} : { role: extra.role }),
    ...(extra.bootstrap === undefined ? {} : { bootstrap: extra.bootstrap }),
    advert: { tools: extra.capability === undefined ? [] : [{ name: `get_${extra.capability}`, capability: extra.capability, version: '1.0.0' }] },
  }, { admitter: memberAdmitter(MESH, TD, () => pems) })
  nodes.push(n)
  return n
}

const boot = member('boot', await svid(ours, 'boot'), { role: 'bootstrap' })
await boot.start()
const A = member('a', await svid(ours, 'a'), { bootstrap: boot.addrs, capability: 'weather' })
const B = member('b', await svid(ours, 'b'), { bootstrap: boot.addrs, capability: 'hotels' })
await Promise.all([A.start(), B.start()])

t.test('members of the trust domain are admitted: they gossip, sync and probe', async (t) => {
  await waitFor('A and B to see each other alive', () => A.replica.get(B.peerId)?.liveness === 'alive' && B.replica.get(A.peerId)?.liveness === 'alive')
  await waitFor('A to probe B', () => A.stats.probes > 0 && B.stats.probes > 0)
  t.equal(A.stats.probeFailures + B.stats.probeFailures, 0, 'no probe failed')
  const r = await A.syncWith(B.peerId, true)
  t.ok(r !== undefined, 'A syncs with B')
  t.equal(boot.stats.refused.admission + A.stats.refused.admission + B.stats.refused.admission, 0, 'nobody was refused')
})

/** Members' refusal counts now (each refusal is counted by the member that refused). */
const refusals = (): number => [boot, A, B].reduce((n, m) => n + m.stats.refused.admission, 0)
const honestReplicasHold = (peerId: string): boolean => [boot, A, B].some((m) => m.replica.get(peerId) !== undefined)

/**
 * A stranger with these credentials joins through the bootstrap and offers a tool: it is refused
 * and counted, learns no member, no member learns its advert, and its connections are closed.
 */
async function strangerIsKeptOut (t: TapTest, what: string, credentials: { certPem: string, keyPem: string, bundlePem: string } | undefined): Promise<void> {
  const before = refusals()
  const stranger = createGossipNode({
    name: `stranger-${nodes.length}`, mesh: MESH, ephemeralKey: true, colocated: true, timing, bootstrap: boot.addrs,
    advert: { tools: [{ name: 'get_weather', capability: 'weather', version: '6.6.6' }] },
  }, credentials === undefined ? {} : { admitter: memberAdmitter(MESH, TD, () => credentials) })
  nodes.push(stranger)
  let synced = false
  stranger.ready().then(() => { synced = true }, () => {})
  await stranger.start()
  await waitFor(`${what}: the bootstrap counts the refusal`, () => refusals() > before, ADMIT_TIMEOUT_MS + 5_000)
  t.same([...stranger.replica.members()].map((e) => e.advert.name), [stranger.options.name], `${what}: its replica holds nobody else (it read no topology)`)
  t.notOk(honestReplicasHold(stranger.peerId), `${what}: no member holds its advert (it offers no tool)`)
  await waitFor(`${what}: the bootstrap to close its connection`, () => !boot.neighbours().includes(stranger.peerId) && stranger.neighbours().length === 0)
  t.notOk(synced, `${what}: it never completed a sync`)
  if (credentials !== undefined) {
    // A proof that failed its checks bars the peer ID for a while: the bootstrap's gater drops its
    // next connection right after Noise, before any proof is checked again.
    const n = refusals()
    await t.rejects(stranger.syncWith(boot.peerId, true), `${what}: its next sync fails`)
    t.equal(refusals(), n, `${what}: its next connection was dropped at the gater, with no new admission`)
  }
  await stranger.stop()
}

t.test('a stranger with no identity at all is closed out after the admission timeout', async (t) => {
  await strangerIsKeptOut(t, 'no proof', undefined)
})

t.test('a stranger with an SVID of an untrusted trust domain is refused', async (t) => {
  await strangerIsKeptOut(t, 'untrusted domain', pemsOf(await svid(foreign, 'mallory')))
})

t.test('a stranger with an SVID in our trust domain issued by another CA is refused', async (t) => {
  await strangerIsKeptOut(t, 'impostor CA', { ...pemsOf(await svid(impostor, 'a')), bundlePem: ours.pem })
})

t.test('a stranger with an expired SVID of our CA is refused', async (t) => {
  await strangerIsKeptOut(t, 'expired', pemsOf(await svid(ours, 'old', { now: Date.now() - 3 * 3600_000, ttlMs: 3600_000 })))
})

t.test('a stranger holding a member\'s certificate but not its key is refused', async (t) => {
  const a = await svid(ours, 'a')
  await strangerIsKeptOut(t, 'borrowed certificate', { ...pemsOf(a), keyPem: (await svid(foreign, 'x')).keyPem })
})

t.test('a raw libp2p host with no identity: its sync and probe streams are closed, its gossip is dropped', async (t) => {
  const key = await generateKeyPair('Ed25519')
  const host = await createHost(parseGossipOptions({ name: 'raw', mesh: MESH, colocated: true }, {}), key)
  await host.start()
  t.teardown(async () => { await host.stop() })
  await host.dial(multiaddr(boot.addrs[0]))
  const pubsub = host.services.pubsub
  pubsub.subscribe(advertTopic(MESH))
  const heard: number[] = []
  pubsub.addEventListener('message', () => { heard.push(Date.now()) })
  const conn = host.getConnections()[0]
  const tryStream = async (protocol: string, frame: object): Promise<string> => {
    try {
      const frames = lpFrames(await conn.newStream(protocol), MAX_PROBE_FRAME_BYTES)
      await frames.write(new TextEncoder().encode(JSON.stringify(frame)))
      await frames.read({ signal: AbortSignal.timeout(ADMIT_TIMEOUT_MS + 3_000) })
      return 'answered'
    } catch (err) {
      return (err as Error).name
    }
  }
  const [sync, probe] = await Promise.all([
    tryStream(syncProtocol(MESH), { t: 'digest', full: true }),
    tryStream(probeProtocol(MESH), { t: 'ping', n: 1 }),
  ])
  t.not(sync, 'answered', `its sync request got no answer (${sync})`)
  t.not(probe, 'answered', `its ping got no answer (${probe})`)
  // An honest update while it was connected: not one gossip message reached it.
  await A.updateAdvert({ tools: [{ name: 'get_weather', capability: 'weather', version: '1.0.1' }] })
  await waitFor('B to hear A\'s update', () => B.replica.get(A.peerId)?.advert.tools[0].version === '1.0.1')
  t.same(heard, [], 'it heard no gossip')
  await waitFor('the bootstrap to close it out', () => host.getConnections().length === 0, ADMIT_TIMEOUT_MS + 5_000)
  t.ok(boot.stats.refused.admission > 0, 'the bootstrap counted it')
})

t.test('a raw host that sends a malformed proof is refused at once, and barred: its next connection is dropped at the gater', async (t) => {
  const host = await createHost(parseGossipOptions({ name: 'raw2', mesh: MESH, colocated: true }, {}), await generateKeyPair('Ed25519'))
  await host.start()
  t.teardown(async () => { await host.stop() })
  const before = boot.stats.refused.admission
  const conn = await host.dial(multiaddr(boot.addrs[0]))
  const frames = lpFrames(await conn.newStream(admissionProtocol(MESH)), 1024)
  await frames.write(new TextEncoder().encode('{"t":"proof","proof":{"chain":[],"sig":""}}'))
  await waitFor('the bootstrap to refuse it', () => boot.stats.refused.admission > before)
  await waitFor('its connection to close', () => host.getConnections().length === 0)
  const n = boot.stats.refused.admission
  const redial = await host.dial(multiaddr(boot.addrs[0])).then(() => 'connected', (err: Error) => err.name)
  const closedIn = await waitFor('the bootstrap to drop its next connection', () => host.getConnections().length === 0, ADMIT_TIMEOUT_MS - 1_000)
  t.comment(`the next dial: ${redial}; closed within ${closedIn} ms, before any admission timeout`)
  t.equal(boot.stats.refused.admission, n, 'the gater turned it away: no new admission was attempted')
})

t.test('proofs: each refusal says why; a proof made for another verifier does not pass', async (t) => {
  const a = await svid(ours, 'a')
  const check = (pems: { certPem: string, keyPem: string, bundlePem: string }, prover = 'P', verifier = 'V') =>
    svidAdmitter({ mesh: MESH, current: () => pems, bundleOf: (td) => td === TD ? ours.pem : undefined }).check(
      svidAdmitter({ mesh: MESH, current: () => pems, bundleOf: () => undefined }).prove(prover, verifier), prover, verifier)
  const ok = check(pemsOf(a))
  t.match(ok, { spiffeId: `spiffe://${TD}/agent/a`, trustDomain: TD }, 'a member of our CA passes')
  t.match(check(pemsOf(await svid(foreign, 'm'))), /evil\.test, which this member does not trust/, 'an untrusted domain')
  t.match(check(pemsOf(await svid(impostor, 'a'))), /does not lead to a CA of the trust domain acme\.test/, 'another CA naming our domain')
  t.match(check(pemsOf(await svid(ours, 'old', { now: Date.now() - 3 * 3600_000, ttlMs: 3600_000 }))), /expired/, 'expired')
  t.match(check({ ...pemsOf(a), keyPem: (await svid(ours, 'x')).keyPem }), /did not sign this connection's peer IDs/, 'a borrowed certificate')
  const admitter = svidAdmitter({ mesh: MESH, current: () => pemsOf(a), bundleOf: () => ours.pem })
  const proof = admitter.prove('P', 'V1')
  t.match(admitter.check(proof, 'P', 'V2'), /did not sign/, 'a proof replayed to another verifier')
  t.match(admitter.check(proof, 'Q', 'V1'), /did not sign/, 'a proof replayed by another peer ID')
  t.match(svidAdmitter({ mesh: `${MESH}-other`, current: () => pemsOf(a), bundleOf: () => ours.pem }).check(proof, 'P', 'V1'), /did not sign/, 'a proof replayed into another mesh')
  t.match(admitter.check({ chain: ['bm90IGEgY2VydA=='], sig: 'AA==' }, 'P', 'V'), /not an X\.509-SVID/, 'garbage')
  t.match(admitter.check({ chain: [ours.pem.replace(/-----[^-]+-----|\s/g, '')], sig: 'AA==' }, 'P', 'V'), /./, 'a CA certificate as the leaf')
})
