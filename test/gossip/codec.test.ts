import t from 'tap'
import { generateKeyPair } from '@libp2p/crypto/keys'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import type { PrivateKey } from '@libp2p/interface'
import { decodeMessage, dropReason, encodeMessage, Kinds } from '../../src/gossip/codec.ts'
import type { DropReason, Leave, Suspect } from '../../src/gossip/codec.ts'
import { AdvertLimits } from '../../src/topology/advert.ts'
import type { Advert } from '../../src/topology/advert.ts'
import { MeshError } from '../../src/errors.ts'

// Wire layout (see src/gossip/codec.ts): magic 'M', wire version 1, kind byte, uint32 payload
// length, JSON payload, 64-byte Ed25519 signature over `mcp-mesh/<kind>/v1/<mesh>\n` + payload.
const HEADER = 7
const SIG = 64
const enc = new TextEncoder()
/** The type of a subtest's `t` (the last overload of `t.test` takes only the callback). */
type TapTest = Parameters<Parameters<typeof t.test>[0]>[0]

const keyA = await generateKeyPair('Ed25519')
const keyB = await generateKeyPair('Ed25519')
const idA = peerIdFromPrivateKey(keyA).toString()
const idB = peerIdFromPrivateKey(keyB).toString()
const now = Date.now()

function advert (peerId: string, over: Partial<Advert> = {}): Advert {
  return {
    v: 1,
    mesh: 'm1',
    name: 'weather-agent',
    role: 'agent',
    peerId,
    incarnation: now,
    seq: 3,
    issuedAt: now,
    status: 'alive',
    addrs: ['/ip4/127.0.0.1/tcp/4001'],
    tools: [{ name: 'get_weather', capability: 'weather', version: '1.2.0', tags: ['fast'] }],
    dependencies: [],
    ...over,
  }
}

/** Frames a payload and signature by hand, as a hostile or buggy peer could. */
function frame (kind: number, body: Uint8Array, sig: Uint8Array): Uint8Array {
  const out = new Uint8Array(HEADER + body.length + sig.length)
  out[0] = 0x4d
  out[1] = 1
  out[2] = kind
  new DataView(out.buffer).setUint32(3, body.length)
  out.set(body, HEADER)
  out.set(sig, HEADER + body.length)
  return out
}

/** Signs `body` with the exact domain prefix of the codec, for kind and mesh of our choosing. */
async function signAs (key: PrivateKey, kind: string, mesh: string, body: Uint8Array): Promise<Uint8Array> {
  const prefix = enc.encode(`mcp-mesh/${kind}/v1/${mesh}\n`)
  const data = new Uint8Array(prefix.length + body.length)
  data.set(prefix)
  data.set(body, prefix.length)
  return key.sign(data)
}

/** Expects `decodeMessage` to throw a MeshError with one of `reasons`; returns the reason seen. */
async function rejects (tt: TapTest, bytes: Uint8Array, reasons: DropReason | DropReason[], mesh = 'm1', maxBytes?: number): Promise<DropReason | undefined> {
  const want = Array.isArray(reasons) ? reasons : [reasons]
  try {
    await decodeMessage(bytes, mesh, maxBytes)
  } catch (err) {
    tt.type(err, MeshError, 'a MeshError')
    const reason = dropReason(err)
    tt.ok(want.includes(reason), `reason ${reason} is one of ${want.join(', ')}`)
    return reason
  }
  tt.fail(`decoded although it should be dropped (${want.join(', ')})`)
  return undefined
}

t.test('round trip: advert, suspect and leave', async (t) => {
  const a = advert(idA)
  const bytes = await encodeMessage('advert', a, 'm1', keyA)
  t.equal(bytes[2], Kinds.advert)
  const d = await decodeMessage(bytes, 'm1')
  t.equal(d.kind, 'advert')
  t.equal(d.signer, idA)
  t.same(d.payload, a)

  const s: Suspect = { v: 1, mesh: 'm1', subject: idB, incarnation: 7, from: idA, issuedAt: now }
  const ds = await decodeMessage(await encodeMessage('suspect', s, 'm1', keyA), 'm1')
  t.equal(ds.kind, 'suspect')
  t.equal(ds.signer, idA, 'a suspicion is signed by its sender')
  t.same(ds.payload, s)

  const l: Leave = { v: 1, mesh: 'm1', peerId: idB, incarnation: 9, issuedAt: now }
  const dl = await decodeMessage(await encodeMessage('leave', l, 'm1', keyB), 'm1')
  t.equal(dl.kind, 'leave')
  t.equal(dl.signer, idB, 'a leave is signed by its subject')
  t.same(dl.payload, l)

  // Defaults are filled in on decode (a minimal advert from a terse encoder).
  const { role: _r, status: _s, dependencies: _d, ...terse } = a
  const dt = await decodeMessage(await encodeMessage('advert', terse as Advert, 'm1', keyA), 'm1')
  t.same(dt.payload, a, 'role, status and dependencies default')
})

t.test('a flipped signature byte is a bad signature', async (t) => {
  const bytes = await encodeMessage('advert', advert(idA), 'm1', keyA)
  for (const at of [bytes.length - 1, bytes.length - SIG]) {
    const bad = bytes.slice()
    bad[at] ^= 0x01
    await rejects(t, bad, 'signature')
  }
  // A flipped payload byte that keeps the JSON valid (a digit of seq) is caught by the signature too.
  const text = new TextDecoder().decode(bytes.subarray(HEADER, bytes.length - SIG))
  const at = HEADER + text.indexOf('"seq":3') + 6
  const bad = bytes.slice()
  bad[at] = '4'.charCodeAt(0)
  await rejects(t, bad, 'signature')
})

t.test('an advert signed by A but claiming B is a bad signature', async (t) => {
  await rejects(t, await encodeMessage('advert', advert(idB), 'm1', keyA), 'signature')
  // The same for a leave (only its subject may sign it) and a suspicion (signed by `from`).
  await rejects(t, await encodeMessage('leave', { v: 1, mesh: 'm1', peerId: idB, incarnation: 1, issuedAt: now }, 'm1', keyA), 'signature')
  await rejects(t, await encodeMessage('suspect', { v: 1, mesh: 'm1', subject: idA, incarnation: 1, from: idB, issuedAt: now }, 'm1', keyA), 'signature')
})

t.test('signed bytes replayed as another kind are rejected', async (t) => {
  const bytes = await encodeMessage('advert', advert(idA), 'm1', keyA)
  const body = bytes.subarray(HEADER, bytes.length - SIG)
  const sig = bytes.subarray(bytes.length - SIG)
  // As a leave: an advert has every field a leave needs (v, mesh, peerId, incarnation, issuedAt) and
  // unknown fields are tolerated, so the shape passes; the domain prefix ("leave") makes it `signature`.
  t.equal(await rejects(t, frame(Kinds.leave, body, sig), 'signature'), 'signature', 'advert as leave: signature')
  // As a suspicion: an advert lacks `subject` and `from`, so it fails the schema first: `invalid`.
  t.equal(await rejects(t, frame(Kinds.suspect, body, sig), 'invalid'), 'invalid', 'advert as suspect: invalid')

  // The other way round: a leave with extra advert-looking fields could pass a loose advert schema;
  // the domain prefix still rejects it. And a suspicion replayed as a leave of its sender.
  const leaveLike = { ...advert(idA) }
  const leaveBytes = await encodeMessage('leave', leaveLike, 'm1', keyA)
  const lb = leaveBytes.subarray(HEADER, leaveBytes.length - SIG)
  const ls = leaveBytes.subarray(leaveBytes.length - SIG)
  t.equal(await rejects(t, frame(Kinds.advert, lb, ls), 'signature'), 'signature', 'leave as advert: signature')
  const susp = await encodeMessage('suspect', { v: 1, mesh: 'm1', subject: idB, incarnation: 1, from: idA, issuedAt: now, peerId: idA } as Suspect, 'm1', keyA)
  const sb = susp.subarray(HEADER, susp.length - SIG)
  const ss = susp.subarray(susp.length - SIG)
  t.equal(await rejects(t, frame(Kinds.leave, sb, ss), 'signature'), 'signature', 'suspect as leave: signature')
})

t.test('a message of mesh m1 is refused on mesh m2', async (t) => {
  await rejects(t, await encodeMessage('advert', advert(idA), 'm1', keyA), 'mesh-mismatch', 'm2')
  await rejects(t, await encodeMessage('leave', { v: 1, mesh: 'm1', peerId: idA, incarnation: 1, issuedAt: now }, 'm1', keyA), 'mesh-mismatch', 'm2')
  await rejects(t, await encodeMessage('suspect', { v: 1, mesh: 'm1', subject: idB, incarnation: 1, from: idA, issuedAt: now }, 'm1', keyA), 'mesh-mismatch', 'm2')
})

t.test('a payload naming m2 but signed in the m1 domain is refused', async (t) => {
  const body = enc.encode(JSON.stringify(advert(idA, { mesh: 'm2' })))
  const sig = await signAs(keyA, 'advert', 'm1', body)
  const bytes = frame(Kinds.advert, body, sig)
  await rejects(t, bytes, 'signature', 'm2')
  await rejects(t, bytes, 'mesh-mismatch', 'm1')
  // Control: the same payload signed in the m2 domain is fine on m2.
  const good = frame(Kinds.advert, body, await signAs(keyA, 'advert', 'm2', body))
  t.equal((await decodeMessage(good, 'm2')).signer, idA)
})

t.test('size limits', async (t) => {
  const bytes = await encodeMessage('advert', advert(idA), 'm1', keyA)
  await rejects(t, bytes, 'too-large', 'm1', bytes.length - 1)
  t.equal((await decodeMessage(bytes, 'm1', bytes.length)).kind, 'advert', 'exactly at the limit is fine')
  // The default limit; the size is checked before anything else, garbage or not.
  await rejects(t, new Uint8Array(AdvertLimits.maxMessageBytes + 1), 'too-large')
  const padded = await encodeMessage('advert', { ...advert(idA), pad: 'x'.repeat(AdvertLimits.maxMessageBytes) } as Advert, 'm1', keyA)
  await rejects(t, padded, 'too-large')
})

t.test('truncated and garbage bytes are malformed', async (t) => {
  const bytes = await encodeMessage('advert', advert(idA), 'm1', keyA)
  const cases: Array<[string, Uint8Array]> = [
    ['empty', new Uint8Array(0)],
    ['a few bytes', Uint8Array.of(0x4d, 1, 1)],
    ['truncated by one byte', bytes.subarray(0, bytes.length - 1)],
    ['truncated in half', bytes.subarray(0, bytes.length >> 1)],
    ['one byte too many', Uint8Array.of(...bytes, 0)],
    ['random garbage', crypto.getRandomValues(new Uint8Array(300))],
    ['wrong magic', Uint8Array.of(0x00, ...bytes.subarray(1))],
    ['unknown wire version', Uint8Array.of(0x4d, 2, ...bytes.subarray(2))],
    ['unknown kind', Uint8Array.of(0x4d, 1, 9, ...bytes.subarray(3))],
    ['payload not JSON', frame(Kinds.advert, enc.encode('{"v":1,'), new Uint8Array(SIG))],
    ['payload not UTF-8', frame(Kinds.advert, Uint8Array.of(0x22, 0xff, 0xfe, 0x22), new Uint8Array(SIG))],
  ]
  for (const [name, b] of cases) {
    t.test(name, async (t) => { await rejects(t, b, 'malformed') })
  }
  // A length field that points past the end of the message.
  const lying = bytes.slice()
  new DataView(lying.buffer).setUint32(3, 0xffffffff)
  await rejects(t, lying, 'malformed')
  // JSON that is not an object of the right shape is `invalid`, not a crash.
  for (const json of ['null', '[]', '"advert"', '{}', '{"v":"1"}']) {
    const body = enc.encode(json)
    await rejects(t, frame(Kinds.advert, body, await signAs(keyA, 'advert', 'm1', body)), 'invalid')
  }
})

t.test('65 tools are too many; 64 are fine', async (t) => {
  const tool = (i: number) => ({ name: `t${i}`, capability: `c${i}`, version: '1.0.0', tags: [] })
  const max = Array.from({ length: AdvertLimits.maxTools }, (_, i) => tool(i))
  t.equal((await decodeMessage(await encodeMessage('advert', advert(idA, { tools: max }), 'm1', keyA), 'm1')).kind, 'advert')
  const over = [...max, tool(64)]
  await rejects(t, await encodeMessage('advert', advert(idA, { tools: over }), 'm1', keyA), 'too-many-tools')
  // Other limits are `invalid`.
  await rejects(t, await encodeMessage('advert', advert(idA, { tools: [{ ...tool(0), version: 'latest' }] }), 'm1', keyA), 'invalid')
  await rejects(t, await encodeMessage('advert', advert(idA, { tools: [{ ...tool(0), tags: Array.from({ length: 33 }, (_, i) => `t${i}`) }] }), 'm1', keyA), 'invalid')
})

t.test('control characters and escape sequences never enter a replica (they would reach terminals)', async (t) => {
  const ESC = '\u001b'
  const hostile: Array<[string, Partial<Advert>]> = [
    ['agent name with a terminal escape', { name: `x${ESC}[2J${ESC}]0;owned\u0007` }],
    ['tool name with a newline', { tools: [{ name: 'get\nweather', capability: 'weather', version: '1.2.0', tags: [] }] }],
    ['capability with a space', { tools: [{ name: 'w', capability: 'weather now', version: '1.2.0', tags: [] }] }],
    ['tag with a C1 control (CSI)', { tools: [{ name: 'w', capability: 'weather', version: '1.2.0', tags: ['fast\u009b31m'] }] }],
    ['description with ESC', { tools: [{ name: 'w', capability: 'weather', version: '1.2.0', tags: [], description: `sunny${ESC}[31m` }] }],
    ['endpoint with a space', { endpoint: 'http://127.0.0.1:1/mcp x' }],
    ['multiaddr with a carriage return', { addrs: ['/ip4/127.0.0.1/tcp/1\r'] }],
    ['status with DEL', { status: 'alive\u007f' }],
  ]
  for (const [what, over] of hostile) {
    t.test(what, async (t) => { await rejects(t, await encodeMessage('advert', advert(idA, over), 'm1', keyA), 'invalid') })
  }
  // What stays allowed: tags like region=eu or team/x, descriptions over several lines.
  const fine = advert(idA, { tools: [{ name: 'w', capability: 'weather', version: '1.2.0', tags: ['region=eu', 'team/x', 'v1.2'], description: 'Line one.\n\tLine two.' }] })
  t.equal((await decodeMessage(await encodeMessage('advert', fine, 'm1', keyA), 'm1')).kind, 'advert')
})

t.test('unknown fields from a newer version are tolerated', async (t) => {
  const newer = {
    ...advert(idA),
    v: 2,
    region: 'eu-west',
    qos: { latencyMs: 12, nested: [1, 2, 3] },
    role: 'router', // an unknown role is kept as a string (read as `agent` by the resolver)
    tools: [{ name: 'get_weather', capability: 'weather', version: '1.2.0', tags: ['fast'], cost: { perCall: 0.01 }, batching: true }],
  }
  const d = await decodeMessage(await encodeMessage('advert', newer as unknown as Advert, 'm1', keyA), 'm1')
  t.equal(d.kind, 'advert')
  t.equal(d.signer, idA)
  if (d.kind !== 'advert') return
  t.equal(d.payload.v, 2)
  t.equal(d.payload.role, 'router')
  t.same(d.payload.tools, [{ name: 'get_weather', capability: 'weather', version: '1.2.0', tags: ['fast'] }], 'unknown tool fields are dropped from the record')
  t.notOk('region' in d.payload, 'unknown top-level fields are dropped from the record')
  // Unknown fields in suspicions and leaves too.
  const s = await decodeMessage(await encodeMessage('suspect', { v: 2, mesh: 'm1', subject: idB, incarnation: 1, from: idA, issuedAt: now, reason: 'timeout' } as Suspect, 'm1', keyA), 'm1')
  t.equal(s.kind, 'suspect')
  const l = await decodeMessage(await encodeMessage('leave', { v: 2, mesh: 'm1', peerId: idA, incarnation: 1, issuedAt: now, note: 'bye' } as Leave, 'm1', keyA), 'm1')
  t.equal(l.kind, 'leave')
})

t.test('a signer that is not an Ed25519 peer ID is unsupported', async (t) => {
  const secp = await generateKeyPair('secp256k1')
  const secpId = peerIdFromPrivateKey(secp).toString()
  t.equal(peerIdFromPrivateKey(secp).type, 'secp256k1')
  // A frame carries exactly 64 signature bytes, so an advert signed by its own secp256k1 key (a DER
  // signature of about 70 bytes) does not even frame: `malformed`. With a 64-byte signature in its
  // place, the secp256k1 signer is named and refused: only Ed25519 peer IDs are accepted.
  await rejects(t, await encodeMessage('advert', advert(secpId), 'm1', secp), 'malformed')
  await rejects(t, await encodeMessage('advert', advert(secpId), 'm1', keyA), 'unsupported-key')
  for (const signer of ['not-a-peer-id', 'QmYyQSo1c1Ym7orWxLYvCrM2EmxFTANf8wXmmE7DWjhx5N', '12D3KooW']) {
    await rejects(t, await encodeMessage('advert', advert(signer), 'm1', keyA), 'unsupported-key')
    await rejects(t, await encodeMessage('suspect', { v: 1, mesh: 'm1', subject: idA, incarnation: 1, from: signer, issuedAt: now }, 'm1', keyA), 'unsupported-key')
  }
})

t.test('dropReason defaults to malformed for foreign errors', async (t) => {
  t.equal(dropReason(new Error('x')), 'malformed')
  t.equal(dropReason(undefined), 'malformed')
  t.equal(dropReason(new MeshError('MESH_ERR_WIRE_SIGNATURE', 'x', { details: { reason: 'signature' } })), 'signature')
})
