// Lifeguard health and adaptive probe timeouts: pure state, checked against the formulas.
import t from 'tap'
import { Awareness } from '../../src/gossip/awareness.ts'
import { TimingSchema } from '../../src/config.ts'

const timing = TimingSchema.parse({ maxProbesPerTick: 8 }) // probe 300 ms floor, 3 s cap, indirect 400 ms, health up to 8

t.test('round trips set the timeout like TCP, plus one retransmission; a new peer is judged by every round trip seen', async (t) => {
  const a = new Awareness(timing)
  t.equal(a.probeTimeout('p'), 3_000, 'no sample at all: the cap (nothing says how far peers are)')
  a.recordRtt('p', 1) // a LAN: srtt 1, rttvar 0.5: 1 + 2 + 1 + 200 = 204, under the floor
  t.equal(a.probeTimeout('p'), 300, 'on a LAN the floor holds')
  t.equal(a.probeTimeout('new'), 300, 'a peer with no sample yet: judged by the round trips seen so far')
  const w = new Awareness(timing)
  w.recordRtt('p', 100) // srtt 100, rttvar 50: 100 + 200, then a retransmission: 100 + max(200, 200)
  t.equal(w.probeTimeout('p'), 100 + 4 * 50 + 100 + 200)
  w.recordRtt('p', 500) // rttvar 0.75*50 + 0.25*400 = 137.5; srtt 0.875*100 + 0.125*500 = 150
  t.equal(w.probeTimeout('p'), Math.min(3_000, 150 + 4 * 137.5 + 150 + 4 * 137.5))
  w.recordRtt('q', 5_000)
  t.equal(w.probeTimeout('q'), 3_000, 'capped at maxProbeTimeoutMs')
  w.forget('q')
  t.ok(w.probeTimeout('q') > 300, 'a forgotten peer is judged by every round trip seen, not the LAN floor')
})

t.test('health stretches every timeout and slows probing, within its bounds', async (t) => {
  const a = new Awareness(timing)
  a.recordRtt('p', 1)
  t.equal(a.probesPerTick(10), 5, 'ten neighbours, a tick every 500 ms, each probed once a second')
  t.equal(a.probesPerTick(0), 1, 'at least one')
  t.equal(a.probesPerTick(100), 8, 'at most maxProbesPerTick')
  t.equal(new Awareness(TimingSchema.parse({})).probesPerTick(10), 3, 'by default at most 3 per tick: 6 a second whatever the degree')
  a.adjust(1)
  t.equal(a.health, 1)
  t.equal(a.probeTimeout('p'), 600)
  t.equal(a.indirectTimeout('p', 'h'), 1_200, 'both legs, each stretched')
  t.equal(a.probesPerTick(10), 3, 'half the probes while unhealthy (rounded up)')
  for (let i = 0; i < 20; i++) a.adjust(1)
  t.equal(a.health, 8, 'capped at maxHealthMultiplier')
  for (let i = 0; i < 20; i++) a.adjust(-1)
  t.equal(a.health, 0, 'never below healthy')
  t.equal(a.indirectTimeout('p', 'h'), 600, 'healthy: the two legs (300 + 300) beat the 400 ms minimum')
})

t.test('a timeout decided more than a quarter of its length late (at least 25 ms) is blamed on this node', async (t) => {
  const a = new Awareness(timing)
  t.notOk(a.isLate(0, 300), 'on time')
  t.notOk(a.isLate(75, 300), 'a quarter of 300 ms late: still judged')
  t.ok(a.isLate(76, 300), 'past a quarter: this node was behind')
  t.notOk(a.isLate(25, 40), 'short timeouts: 25 ms of lag is tolerated')
  t.ok(a.isLate(26, 40))
})

t.test('a suspicion expects no more confirmations than the suspect has other neighbours', async (t) => {
  const a = new Awareness(timing)
  t.equal(a.expectedConfirmations('p', 3), 3, 'never said: the configured number')
  a.recordDegree('p', 3)
  t.equal(a.expectedConfirmations('p', 3), 2, '3 neighbours: the suspecter and 2 others')
  a.recordDegree('p', 1)
  t.equal(a.expectedConfirmations('p', 3), 2, 'never below 2 (a member still starting)')
  t.equal(a.expectedConfirmations('p', 1), 1, 'nor above the configured number')
  a.recordDegree('p', 40)
  t.equal(a.expectedConfirmations('p', 3), 3, 'never above the configured number')
  a.forget('p')
  t.equal(a.expectedConfirmations('p', 3), 3, 'forgotten with the peer')
})

t.test('a late ack counts a timeout longer on a slow link, not at all on a LAN', async (t) => {
  const lan = new Awareness(timing)
  lan.recordRtt('p', 1)
  t.equal(lan.lateAckWindow('p'), 0, 'at the 300 ms floor: no window, detection as before')
  const wan = new Awareness(timing)
  wan.recordRtt('p', 100) // 100 + 200, then a retransmission: 100 + 200 = 600
  t.equal(wan.lateAckWindow('p'), wan.probeTimeout('p'))
  t.equal(wan.lateAckWindow('p'), 600)
})
