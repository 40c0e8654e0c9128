import t from 'tap'
import { ManualClock } from '../../src/clock.ts'
import { AdvertSchema } from '../../src/topology/advert.ts'
import type { Advert } from '../../src/topology/advert.ts'
import { DIGEST_BUCKETS, bucketOf } from '../../src/topology/digest.ts'
import { Replica } from '../../src/topology/replica.ts'
import type { ReplicaChange, ReplicaTiming } from '../../src/topology/replica.ts'

const timing: ReplicaTiming = {
  suspicionMinTimeoutMs: 1_000,
  suspicionMaxTimeoutMs: 6_000,
  suspicionConfirmations: 3,
  maxAdvertAgeMs: 60 * 60_000,
  maxClockSkewMs: 5 * 60_000,
  tombstoneMs: 2 * 60 * 60_000,
}

const env = new Uint8Array([1, 2, 3])

interface Fixture {
  clock: ManualClock
  replica: Replica
  /** A valid advert for `peerId`, issued now unless told otherwise. */
  ad: (peerId: string, incarnation?: number, seq?: number, issuedAt?: number) => Advert
}

function setup (t: { teardown: (fn: () => void) => void }, selfId = 'self'): Fixture {
  const clock = new ManualClock()
  const replica = new Replica({ selfId, clock, timing })
  t.teardown(() => { replica.stop() })
  const ad = (peerId: string, incarnation = 1, seq = 0, issuedAt = clock.now()): Advert => AdvertSchema.parse({
    v: 1,
    mesh: 'test',
    name: `agent-${peerId}`,
    peerId,
    incarnation,
    seq,
    issuedAt,
    addrs: [],
    tools: [{ name: 'get_weather', capability: 'weather', version: '1.0.0' }],
  })
  return { clock, replica, ad }
}

t.test('adverts: ordering and refusal', async (t) => {
  t.test('a new advert is accepted and the member is alive', async (t) => {
    const { replica, ad } = setup(t)
    t.equal(replica.applyAdvert(ad('p1', 10, 0), env), 'new')
    t.equal(replica.size, 1)
    t.equal(replica.get('p1')?.liveness, 'alive')
    t.equal(replica.get('p1')?.advert.incarnation, 10)
    t.equal(replica.get('p1')?.envelope, env)
  })

  t.test('the same version again is a duplicate and changes nothing', async (t) => {
    const { replica, ad } = setup(t)
    replica.applyAdvert(ad('p1', 10, 3), env)
    const root = replica.digestRoot()
    const other = new Uint8Array([9])
    t.equal(replica.applyAdvert(ad('p1', 10, 3), other), 'duplicate')
    t.equal(replica.get('p1')?.envelope, env, 'the first envelope is kept')
    t.equal(replica.digestRoot(), root)
  })

  t.test('a higher seq in the same incarnation updates', async (t) => {
    const { replica, ad } = setup(t)
    replica.applyAdvert(ad('p1', 10, 3), env)
    t.equal(replica.applyAdvert(ad('p1', 10, 4), env), 'updated')
    t.equal(replica.get('p1')?.advert.seq, 4)
  })

  t.test('a lower seq (replay) is stale', async (t) => {
    const { replica, ad } = setup(t)
    replica.applyAdvert(ad('p1', 10, 3), env)
    t.equal(replica.applyAdvert(ad('p1', 10, 2), env), 'stale')
    t.equal(replica.get('p1')?.advert.seq, 3)
  })

  t.test('a lower incarnation (replay), even with a higher seq, is stale', async (t) => {
    const { replica, ad } = setup(t)
    replica.applyAdvert(ad('p1', 10, 3), env)
    t.equal(replica.applyAdvert(ad('p1', 9, 99), env), 'stale')
    t.equal(replica.get('p1')?.advert.incarnation, 10)
    t.equal(replica.get('p1')?.advert.seq, 3)
  })

  t.test('an advert older than maxAdvertAgeMs is too-old', async (t) => {
    const { clock, replica, ad } = setup(t)
    const now = clock.now()
    t.equal(replica.applyAdvert(ad('p1', 1, 0, now - timing.maxAdvertAgeMs - 1), env), 'too-old')
    t.equal(replica.get('p1'), undefined, 'nothing stored')
    t.equal(replica.applyAdvert(ad('p2', 1, 0, now - timing.maxAdvertAgeMs), env), 'new', 'exactly the maximum age is still accepted')
  })

  t.test('an advert that was fine becomes too-old once time passes', async (t) => {
    const { clock, replica, ad } = setup(t)
    const a = ad('p1', 1, 0)
    clock.advance(timing.maxAdvertAgeMs + 1)
    t.equal(replica.applyAdvert(a, env), 'too-old')
  })

  t.test('an advert dated beyond maxClockSkewMs in the future is refused', async (t) => {
    const { clock, replica, ad } = setup(t)
    const now = clock.now()
    t.equal(replica.applyAdvert(ad('p1', 1, 0, now + timing.maxClockSkewMs + 1), env), 'future')
    t.equal(replica.get('p1'), undefined, 'nothing stored')
    t.equal(replica.applyAdvert(ad('p2', 1, 0, now + timing.maxClockSkewMs), env), 'new', 'exactly the allowed skew is accepted')
  })

  t.test('a restarted agent (higher incarnation, seq 0) beats its old adverts with a higher seq', async (t) => {
    const { clock, replica, ad } = setup(t)
    const firstStart = clock.now()
    t.equal(replica.applyAdvert(ad('p1', firstStart, 50), env), 'new')
    clock.advance(10_000)
    const restart = clock.now()
    t.equal(replica.applyAdvert(ad('p1', restart, 0), env), 'updated')
    t.equal(replica.get('p1')?.advert.incarnation, restart)
    t.equal(replica.get('p1')?.advert.seq, 0)
    // The old process's later adverts, still circulating, lose.
    t.equal(replica.applyAdvert(ad('p1', firstStart, 51), env), 'stale')
    t.equal(replica.get('p1')?.advert.incarnation, restart)
  })
})

t.test('suspicion', async (t) => {
  t.test('a suspicion starts and the member becomes suspect', async (t) => {
    const { replica, ad } = setup(t)
    replica.applyAdvert(ad('p1', 5), env)
    t.equal(replica.applySuspect('p1', 5, 'a'), 'started')
    const e = replica.get('p1')
    t.equal(e?.liveness, 'suspect')
    t.same([...e?.suspecters ?? []], ['a'])
    t.same([...replica.up()].map((m) => m.advert.peerId), ['p1'], 'a suspect is still up')
  })

  t.test('with one suspecter, death comes only after suspicionMaxTimeoutMs', async (t) => {
    const { clock, replica, ad } = setup(t)
    replica.applyAdvert(ad('p1', 5), env)
    replica.applySuspect('p1', 5, 'a')
    clock.advance(timing.suspicionMaxTimeoutMs - 1)
    t.equal(replica.get('p1')?.liveness, 'suspect', 'just below max: still suspect')
    clock.advance(2)
    t.equal(replica.get('p1')?.liveness, 'dead', 'past max: dead')
    t.equal(clock.pending, 0, 'no timer left behind')
  })

  t.test('confirmations from independent suspecters shrink the timeout to the min', async (t) => {
    const { clock, replica, ad } = setup(t)
    replica.applyAdvert(ad('p1', 5), env)
    t.equal(replica.applySuspect('p1', 5, 'a'), 'started')
    // K = 3 confirmations beyond the first suspecter.
    t.equal(replica.applySuspect('p1', 5, 'b'), 'confirmed')
    t.equal(replica.applySuspect('p1', 5, 'c'), 'confirmed')
    t.equal(replica.applySuspect('p1', 5, 'd'), 'confirmed')
    t.equal(replica.get('p1')?.suspecters?.size, 4)
    clock.advance(timing.suspicionMinTimeoutMs - 1)
    t.equal(replica.get('p1')?.liveness, 'suspect', 'just below min: still suspect')
    clock.advance(2)
    t.equal(replica.get('p1')?.liveness, 'dead', 'past min: dead')
  })

  t.test('one confirmation shortens the timeout below max but not to min', async (t) => {
    const { clock, replica, ad } = setup(t)
    replica.applyAdvert(ad('p1', 5), env)
    replica.applySuspect('p1', 5, 'a')
    replica.applySuspect('p1', 5, 'b')
    // max - (max - min) * log(2) / log(4) = 6000 - 5000 / 2 = 3500
    clock.advance(3_499)
    t.equal(replica.get('p1')?.liveness, 'suspect')
    clock.advance(2)
    t.equal(replica.get('p1')?.liveness, 'dead')
  })

  t.test('a member with few neighbours: as many confirmations as it can get bring the min', async (t) => {
    const { clock, replica, ad } = setup(t)
    replica.applyAdvert(ad('p1', 5), env)
    // Three neighbours: the suspecter and 2 others can speak, so 2 confirmations is all there is.
    replica.applySuspect('p1', 5, 'a', 2)
    t.equal(replica.get('p1')?.expectedConfirmations, 2)
    replica.applySuspect('p1', 5, 'b', 2)
    replica.applySuspect('p1', 5, 'c', 2)
    clock.advance(timing.suspicionMinTimeoutMs - 1)
    t.equal(replica.get('p1')?.liveness, 'suspect')
    clock.advance(2)
    t.equal(replica.get('p1')?.liveness, 'dead', 'dead at the min (with K = 3 it waited 2,039 ms)')
  })

  t.test('a lone voice waits the max whatever it claims; the largest claim counts', async (t) => {
    const { clock, replica, ad } = setup(t)
    replica.applyAdvert(ad('p1', 5), env)
    replica.applySuspect('p1', 5, 'liar', 1)
    clock.advance(timing.suspicionMaxTimeoutMs - 1)
    t.equal(replica.get('p1')?.liveness, 'suspect', 'one voice claiming 1 expected confirmation: still the full max')
    clock.advance(2)
    t.equal(replica.get('p1')?.liveness, 'dead')

    replica.applyAdvert(ad('p2', 5), env)
    replica.applySuspect('p2', 5, 'liar', 1)
    replica.applySuspect('p2', 5, 'honest', 3)
    t.equal(replica.get('p2')?.expectedConfirmations, 3, 'an honest suspecter\'s claim overrides a lower one')
    clock.advance(3_499)
    t.equal(replica.get('p2')?.liveness, 'suspect', 'one confirmation of 3: 3,500 ms, not the min')
    replica.applyAdvert(ad('p3', 5), env)
    replica.applySuspect('p3', 5, 'a', 0)
    t.equal(replica.get('p3')?.expectedConfirmations, 1, 'claims are clamped to 1..suspicionConfirmations')
    replica.applySuspect('p3', 5, 'b', 99)
    t.equal(replica.get('p3')?.expectedConfirmations, 3)

    replica.applyAdvert(ad('p4', 5), env)
    replica.applySuspect('p4', 5, 'a')
    t.equal(replica.get('p4')?.expectedConfirmations, 3, 'no claim: suspicionConfirmations applies')
    replica.applySuspect('p4', 5, 'b')
    replica.applySuspect('p4', 5, 'c', 1)
    t.equal(replica.get('p4')?.expectedConfirmations, 1, 'a voice that does not know the degree does not raise a claim')
    clock.advance(timing.suspicionMinTimeoutMs + 1)
    t.equal(replica.get('p4')?.liveness, 'dead', '2 confirmations of 1 expected: the min')
  })

  t.test('a late confirmation counts from when the suspicion started', async (t) => {
    const { clock, replica, ad } = setup(t)
    replica.applyAdvert(ad('p1', 5), env)
    replica.applySuspect('p1', 5, 'a')
    clock.advance(3_000)
    for (const s of ['b', 'c', 'd']) replica.applySuspect('p1', 5, s)
    clock.advance(0)
    t.equal(replica.get('p1')?.liveness, 'dead', 'the min already elapsed: dead at once')
  })

  t.test('the same suspecter twice is a duplicate and does not shorten the timeout', async (t) => {
    const { clock, replica, ad } = setup(t)
    replica.applyAdvert(ad('p1', 5), env)
    replica.applySuspect('p1', 5, 'a')
    t.equal(replica.applySuspect('p1', 5, 'a'), 'duplicate')
    t.equal(replica.applySuspect('p1', 5, 'a'), 'duplicate')
    t.equal(replica.get('p1')?.suspecters?.size, 1)
    clock.advance(timing.suspicionMaxTimeoutMs - 1)
    t.equal(replica.get('p1')?.liveness, 'suspect', 'still the full max')
    clock.advance(2)
    t.equal(replica.get('p1')?.liveness, 'dead')
  })

  t.test('an advert with a higher incarnation refutes the suspicion', async (t) => {
    const { clock, replica, ad } = setup(t)
    replica.applyAdvert(ad('p1', 5, 2), env)
    replica.applySuspect('p1', 5, 'a')
    clock.advance(1_000)
    t.equal(replica.applyAdvert(ad('p1', 6, 0), env), 'updated')
    const e = replica.get('p1')
    t.equal(e?.liveness, 'alive')
    t.equal(e?.suspecters, undefined)
    t.equal(clock.pending, 0, 'the death timer is cancelled')
    clock.advance(timing.suspicionMaxTimeoutMs * 2)
    t.equal(replica.get('p1')?.liveness, 'alive', 'still alive well past max')
  })

  t.test('a refutation that arrived by the time the suspicion expires, but is not read yet, wins', async (t) => {
    const { clock, replica, ad } = setup(t)
    replica.applyAdvert(ad('p1', 5, 2), env)
    replica.applySuspect('p1', 5, 'a')
    // The refutation is delivered at the instant the suspicion times out, queued behind the timer
    // (an event loop runs due timers before it reads the sockets).
    clock.setTimeout(() => { replica.applyAdvert(ad('p1', 6, 0), env) }, timing.suspicionMaxTimeoutMs)
    const seen: string[] = []
    replica.onChange((c) => { seen.push(c.after) })
    clock.advance(timing.suspicionMaxTimeoutMs + 1)
    t.same(seen, ['alive'], 'never dead: the death is decided after pending work, which refuted it')
    t.equal(replica.get('p1')?.advert.incarnation, 6)
  })

  t.test('a higher seq in the same incarnation does not refute the suspicion', async (t) => {
    const { clock, replica, ad } = setup(t)
    replica.applyAdvert(ad('p1', 5, 2), env)
    replica.applySuspect('p1', 5, 'a')
    t.equal(replica.applyAdvert(ad('p1', 5, 3), env), 'updated')
    t.equal(replica.get('p1')?.advert.seq, 3, 'the advert itself is taken')
    t.equal(replica.get('p1')?.liveness, 'suspect', 'but the member stays suspect')
    clock.advance(timing.suspicionMaxTimeoutMs + 1)
    t.equal(replica.get('p1')?.liveness, 'dead', 'and the timer still fires')
  })

  t.test('a suspicion of this node itself returns self and changes nothing', async (t) => {
    const { clock, replica, ad } = setup(t, 'me')
    replica.applyAdvert(ad('me', 5), env)
    t.equal(replica.applySuspect('me', 5, 'a'), 'self')
    t.equal(replica.get('me')?.liveness, 'alive')
    t.equal(clock.pending, 0)
  })

  t.test('a suspicion at an older incarnation is stale', async (t) => {
    const { clock, replica, ad } = setup(t)
    replica.applyAdvert(ad('p1', 5), env)
    t.equal(replica.applySuspect('p1', 4, 'a'), 'stale')
    t.equal(replica.applySuspect('p1', 6, 'a'), 'ahead', 'a suspicion of an incarnation never seen is dropped')
    t.equal(replica.get('p1')?.liveness, 'alive', 'and does not make the member suspect')
    t.equal(replica.get('p1')?.liveness, 'alive')
    t.equal(clock.pending, 0)
  })

  t.test('after a refutation, a confirmation of the old suspicion is stale', async (t) => {
    const { replica, ad } = setup(t)
    replica.applyAdvert(ad('p1', 5), env)
    replica.applySuspect('p1', 5, 'a')
    replica.applyAdvert(ad('p1', 6), env)
    t.equal(replica.applySuspect('p1', 5, 'b'), 'stale')
    t.equal(replica.get('p1')?.liveness, 'alive')
  })

  t.test('a suspicion of an unknown member is unknown', async (t) => {
    const { replica } = setup(t)
    t.equal(replica.applySuspect('nobody', 1, 'a'), 'unknown')
    t.equal(replica.size, 0)
  })
})

t.test('leave, death and tombstones', async (t) => {
  t.test('a leave marks the member left; same incarnation is tombstoned, higher revives', async (t) => {
    const { replica, ad } = setup(t)
    replica.applyAdvert(ad('p1', 5, 1), env)
    const leave = new Uint8Array([7])
    t.equal(replica.applyLeave('p1', 5, leave), 'left')
    t.equal(replica.get('p1')?.liveness, 'left')
    t.equal(replica.get('p1')?.leaveEnvelope, leave)
    t.equal(replica.applyLeave('p1', 5, leave), 'stale', 'a second leave is stale')
    t.equal(replica.applyAdvert(ad('p1', 5, 2), env), 'tombstoned', 'same incarnation, higher seq')
    t.equal(replica.get('p1')?.liveness, 'left')
    t.equal(replica.applyAdvert(ad('p1', 6, 0), env), 'revived')
    const e = replica.get('p1')
    t.equal(e?.liveness, 'alive')
    t.equal(e?.advert.incarnation, 6)
    t.equal(e?.leaveEnvelope, undefined)
  })

  t.test('a leave at an older incarnation is stale', async (t) => {
    const { replica, ad } = setup(t)
    replica.applyAdvert(ad('p1', 5), env)
    t.equal(replica.applyLeave('p1', 4, env), 'stale')
    t.equal(replica.get('p1')?.liveness, 'alive')
    t.equal(replica.applyLeave('nobody', 1, env), 'unknown')
  })

  t.test('a leave cancels a pending suspicion', async (t) => {
    const { clock, replica, ad } = setup(t)
    replica.applyAdvert(ad('p1', 5), env)
    replica.applySuspect('p1', 5, 'a')
    t.equal(replica.applyLeave('p1', 5, env), 'left')
    t.equal(clock.pending, 0)
    clock.advance(timing.suspicionMaxTimeoutMs + 1)
    t.equal(replica.get('p1')?.liveness, 'left', 'not turned dead by the old timer')
  })

  t.test("a dead member's old adverts are tombstoned", async (t) => {
    const { clock, replica, ad } = setup(t)
    replica.applyAdvert(ad('p1', 5, 3), env)
    replica.applySuspect('p1', 5, 'a')
    clock.advance(timing.suspicionMaxTimeoutMs + 1)
    t.equal(replica.get('p1')?.liveness, 'dead')
    t.equal(replica.applyAdvert(ad('p1', 5, 3), env), 'tombstoned', 'the same advert')
    t.equal(replica.applyAdvert(ad('p1', 5, 4), env), 'tombstoned', 'a higher seq of the same incarnation')
    t.equal(replica.applyAdvert(ad('p1', 4, 9), env), 'tombstoned', 'an older incarnation')
    t.equal(replica.get('p1')?.liveness, 'dead')
    t.equal(replica.applySuspect('p1', 5, 'b'), 'unknown', 'a dead member cannot be suspected')
    t.equal(replica.applyAdvert(ad('p1', 6, 0), env), 'revived')
  })

  t.test('declareDead marks a member dead, never this node', async (t) => {
    const { replica, ad } = setup(t, 'me')
    replica.applyAdvert(ad('me', 1), env)
    replica.applyAdvert(ad('p1', 1), env)
    t.equal(replica.declareDead('me'), false)
    t.equal(replica.get('me')?.liveness, 'alive')
    t.equal(replica.declareDead('p1'), true)
    t.equal(replica.get('p1')?.liveness, 'dead')
    t.equal(replica.declareDead('p1'), false, 'already dead')
    t.same([...replica.up()].map((m) => m.advert.peerId), ['me'])
  })

  t.test('gc forgets tombstones only after tombstoneMs, and never live members', async (t) => {
    const { clock, replica, ad } = setup(t)
    replica.applyAdvert(ad('dead', 1), env)
    replica.applyAdvert(ad('left', 1), env)
    replica.applyAdvert(ad('alive', 1), env)
    replica.declareDead('dead')
    replica.applyLeave('left', 1, env)
    t.equal(replica.gc(), 0, 'nothing right away')
    clock.advance(timing.tombstoneMs)
    t.equal(replica.gc(), 0, 'not at exactly tombstoneMs')
    t.equal(replica.size, 3)
    clock.advance(1)
    t.equal(replica.gc(), 2)
    t.equal(replica.size, 1)
    t.equal(replica.get('dead'), undefined)
    t.equal(replica.get('left'), undefined)
    t.equal(replica.get('alive')?.liveness, 'alive')
  })
})

t.test('the member cap: the oldest tombstone makes room; with none, a new member is refused', async (t) => {
  const clock = new ManualClock()
  const replica = new Replica({ selfId: 'self', clock, timing, maxMembers: 3 })
  t.teardown(() => { replica.stop() })
  const ad = (peerId: string): Advert => AdvertSchema.parse({ v: 1, mesh: 'test', name: `agent-${peerId}`, peerId, incarnation: 1, seq: 0, issuedAt: clock.now(), addrs: [], tools: [] })
  for (const p of ['p1', 'p2', 'p3']) t.equal(replica.applyAdvert(ad(p), env), 'new')
  t.equal(replica.applyAdvert(ad('p4'), env), 'full', 'at the cap with no tombstone: refused')
  replica.declareDead('p2')
  clock.advance(10)
  replica.applyLeave('p1', 1, env)
  t.equal(replica.applyAdvert(ad('p4'), env), 'new', 'the oldest tombstone (p2, dead first) made room')
  t.equal(replica.get('p2'), undefined)
  t.equal(replica.get('p1')?.liveness, 'left', 'the newer tombstone stays')
  t.equal(replica.applyAdvert(ad('p5'), env), 'new', 'then p1 makes room')
  t.equal(replica.applyAdvert(ad('p6'), env), 'full')
  t.equal(replica.size, 3)
})

t.test('digest', async (t) => {
  t.test('the same adverts in different orders give equal roots', async (t) => {
    const a = setup(t)
    const b = setup(t)
    const ads = [
      a.ad('p1', 1, 0), a.ad('p2', 1, 0), a.ad('p1', 1, 1), a.ad('p3', 2, 0),
      a.ad('p3', 3, 0), a.ad('p4', 1, 5), a.ad('p2', 1, 2),
    ]
    for (const x of ads) a.replica.applyAdvert(x, env)
    for (const x of [...ads].reverse()) b.replica.applyAdvert(x, env)
    const shuffled = [ads[3], ads[6], ads[0], ads[5], ads[2], ads[4], ads[1]]
    const c = setup(t)
    for (const x of shuffled) c.replica.applyAdvert(x, env)
    t.equal(a.replica.digestRoot(), b.replica.digestRoot())
    t.equal(a.replica.digestRoot(), c.replica.digestRoot())
    t.same(a.replica.digestBuckets(), b.replica.digestBuckets())
    t.not(a.replica.digestRoot(), setup(t).replica.digestRoot(), 'differs from an empty replica')
  })

  t.test('a differing version gives a different root, and only its bucket differs', async (t) => {
    const a = setup(t)
    const b = setup(t)
    const peers = ['p1', 'p2', 'p3', 'p4', 'p5', 'p6', 'p7', 'p8']
    for (const p of peers) {
      a.replica.applyAdvert(a.ad(p, 1, 0), env)
      b.replica.applyAdvert(b.ad(p, 1, 0), env)
    }
    t.equal(a.replica.digestRoot(), b.replica.digestRoot())
    b.replica.applyAdvert(b.ad('p5', 1, 1), env)
    t.not(a.replica.digestRoot(), b.replica.digestRoot())
    const ba = a.replica.digestBuckets()
    const bb = b.replica.digestBuckets()
    t.equal(ba.length, DIGEST_BUCKETS)
    const differing = ba.flatMap((h, i) => h === bb[i] ? [] : [i])
    t.same(differing, [bucketOf('p5')])
  })

  t.test('a dead member leaves the digest', async (t) => {
    const a = setup(t)
    const b = setup(t)
    a.replica.applyAdvert(a.ad('p1', 1, 0), env)
    a.replica.applyAdvert(a.ad('p2', 1, 0), env)
    b.replica.applyAdvert(b.ad('p1', 1, 0), env)
    t.not(a.replica.digestRoot(), b.replica.digestRoot())
    a.replica.declareDead('p2')
    t.equal(a.replica.digestRoot(), b.replica.digestRoot(), 'as if p2 were never there')
    a.replica.applyAdvert(a.ad('p2', 2, 0), env)
    b.replica.applyAdvert(b.ad('p2', 2, 0), env)
    t.equal(a.replica.digestRoot(), b.replica.digestRoot(), 'revived: back in the digest at its new version')
  })

  t.test('a left member leaves the digest', async (t) => {
    const a = setup(t)
    const empty = setup(t).replica.digestRoot()
    a.replica.applyAdvert(a.ad('p1', 1, 0), env)
    a.replica.applyLeave('p1', 1, env)
    t.equal(a.replica.digestRoot(), empty)
  })

  t.test('inBuckets returns the members of those buckets, sorted by peer ID', async (t) => {
    const { replica, ad } = setup(t)
    const peers = Array.from({ length: 200 }, (_, i) => `peer-${String(i).padStart(3, '0')}`)
    for (const p of [...peers].reverse()) replica.applyAdvert(ad(p), env)
    const all = new Set(Array.from({ length: DIGEST_BUCKETS }, (_, i) => i))
    const ids = replica.inBuckets(all).map((e) => e.advert.peerId)
    t.same(ids, [...peers].sort(), 'every member, sorted although inserted in reverse')

    const some = new Set([bucketOf('peer-007'), bucketOf('peer-150')])
    const expected = peers.filter((p) => some.has(bucketOf(p))).sort()
    const got = replica.inBuckets(some).map((e) => e.advert.peerId)
    t.ok(got.length >= 2)
    t.ok(got.length < peers.length, 'only the asked buckets')
    t.same(got, expected)
    t.same(replica.inBuckets(new Set()), [])
  })
})

t.test('change events', async (t) => {
  const { clock, replica, ad } = setup(t)
  const seen: Array<Omit<ReplicaChange, 'advert'> & { seq: number, incarnation: number }> = []
  const off = replica.onChange((c) => {
    seen.push({ peerId: c.peerId, before: c.before, after: c.after, advertChanged: c.advertChanged, incarnation: c.advert.incarnation, seq: c.advert.seq })
  })
  const take = (): typeof seen => seen.splice(0)

  replica.applyAdvert(ad('p1', 1, 0), env)
  t.same(take(), [{ peerId: 'p1', before: undefined, after: 'alive', advertChanged: true, incarnation: 1, seq: 0 }], 'new')
  replica.applyAdvert(ad('p1', 1, 1), env)
  t.same(take(), [{ peerId: 'p1', before: 'alive', after: 'alive', advertChanged: true, incarnation: 1, seq: 1 }], 'updated')
  replica.applyAdvert(ad('p1', 1, 1), env)
  replica.applyAdvert(ad('p1', 1, 0), env)
  replica.applyAdvert(ad('p1', 1, 5, clock.now() + timing.maxClockSkewMs + 1), env)
  t.same(take(), [], 'duplicate, stale and refused adverts emit nothing')

  replica.applySuspect('p1', 1, 'a')
  t.same(take(), [{ peerId: 'p1', before: 'alive', after: 'suspect', advertChanged: false, incarnation: 1, seq: 1 }], 'suspect')
  replica.applySuspect('p1', 1, 'b')
  replica.applySuspect('p1', 1, 'b')
  t.same(take(), [], 'confirmations and duplicates emit nothing')
  replica.applyAdvert(ad('p1', 1, 2), env)
  t.same(take(), [{ peerId: 'p1', before: 'suspect', after: 'suspect', advertChanged: true, incarnation: 1, seq: 2 }], 'new seq while suspect')
  replica.applyAdvert(ad('p1', 2, 0), env)
  t.same(take(), [{ peerId: 'p1', before: 'suspect', after: 'alive', advertChanged: true, incarnation: 2, seq: 0 }], 'refuted')

  replica.applySuspect('p1', 2, 'a')
  take()
  clock.advance(timing.suspicionMaxTimeoutMs + 1)
  t.same(take(), [{ peerId: 'p1', before: 'suspect', after: 'dead', advertChanged: false, incarnation: 2, seq: 0 }], 'died')
  replica.applyAdvert(ad('p1', 2, 1), env)
  t.same(take(), [], 'tombstoned emits nothing')
  replica.applyAdvert(ad('p1', 3, 0), env)
  t.same(take(), [{ peerId: 'p1', before: 'dead', after: 'alive', advertChanged: true, incarnation: 3, seq: 0 }], 'revived')
  replica.applyLeave('p1', 3, env)
  t.same(take(), [{ peerId: 'p1', before: 'alive', after: 'left', advertChanged: false, incarnation: 3, seq: 0 }], 'left')

  off()
  replica.applyAdvert(ad('p2', 1, 0), env)
  t.same(take(), [], 'no events after unsubscribing')
})

t.test('stop() cancels every suspicion timer', async (t) => {
  const { clock, replica, ad } = setup(t)
  for (const p of ['p1', 'p2', 'p3']) {
    replica.applyAdvert(ad(p, 1), env)
    replica.applySuspect(p, 1, 'a')
  }
  t.equal(clock.pending, 3)
  replica.stop()
  t.equal(clock.pending, 0)
  clock.advance(timing.suspicionMaxTimeoutMs + 1)
  for (const p of ['p1', 'p2', 'p3']) t.equal(replica.get(p)?.liveness, 'suspect', `${p} not declared dead after stop`)
})
