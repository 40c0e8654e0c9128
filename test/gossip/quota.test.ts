import t from 'tap'
import { ManualClock } from '../../src/clock.ts'
import { Quota } from '../../src/gossip/quota.ts'

/** Takes `n` tokens for `key`; returns how many were granted. */
function takeN (q: Quota, key: string, n: number): number {
  let ok = 0
  for (let i = 0; i < n; i++) if (q.take(key)) ok++
  return ok
}

t.test('a full burst is granted, then refused', async (t) => {
  const clock = new ManualClock()
  const q = new Quota({ clock, perMinute: 60, burst: 5 })
  for (let i = 0; i < 5; i++) t.equal(q.take('a'), true, `token ${i + 1}`)
  t.equal(q.take('a'), false, 'the bucket is empty')
  t.equal(q.take('a'), false, 'and stays empty without time passing')
})

t.test('tokens refill at perMinute over time', async (t) => {
  const clock = new ManualClock()
  const q = new Quota({ clock, perMinute: 60, burst: 3 }) // one token a second
  t.equal(takeN(q, 'a', 3), 3)
  t.equal(q.take('a'), false)
  clock.advance(500)
  t.equal(q.take('a'), false, 'half a token is not enough')
  clock.advance(500)
  t.equal(q.take('a'), true, 'a whole token after a second')
  t.equal(q.take('a'), false)
  clock.advance(2_000)
  t.equal(takeN(q, 'a', 5), 2, 'two seconds give two tokens')
})

t.test('refill is capped at the burst', async (t) => {
  const clock = new ManualClock()
  const q = new Quota({ clock, perMinute: 60, burst: 4 })
  t.equal(takeN(q, 'a', 4), 4)
  clock.advance(60 * 60_000)
  t.equal(takeN(q, 'a', 10), 4, 'an hour idle still saves only a burst')
})

t.test('keys are independent', async (t) => {
  const clock = new ManualClock()
  const q = new Quota({ clock, perMinute: 1, burst: 2 })
  t.equal(takeN(q, 'a', 5), 2)
  t.equal(q.take('a'), false)
  t.equal(takeN(q, 'b', 5), 2, "b has its own burst, untouched by a's")
  t.equal(q.take('a'), false, "and b's use does not refill a")
})

t.test('the number of keys is bounded: least recently used are forgotten', async (t) => {
  const clock = new ManualClock()
  const q = new Quota({ clock, perMinute: 1, burst: 2, maxKeys: 3 })
  t.equal(takeN(q, 'a', 2), 2)
  t.equal(takeN(q, 'b', 2), 2)
  t.equal(q.take('a'), false, 'a is exhausted (and now the most recently used)')
  t.equal(q.take('c'), true)
  t.equal(q.take('d'), true, 'a fourth key evicts the least recently used, b')
  t.equal(q.take('a'), false, 'a is still remembered and still exhausted')
  t.equal(takeN(q, 'b', 2), 2, 'b was forgotten: it starts with a fresh burst')

  // Many distinct keys: the old ones cannot all be remembered.
  for (let i = 0; i < 1_000; i++) q.take(`k${i}`)
  t.equal(takeN(q, 'a', 2), 2, 'a was forgotten among many keys')
})

t.test('the default bound is 10,000 keys', async (t) => {
  const clock = new ManualClock()
  const q = new Quota({ clock, perMinute: 1, burst: 1 })
  t.equal(q.take('first'), true)
  t.equal(q.take('first'), false)
  for (let i = 0; i < 9_999; i++) q.take(`k${i}`)
  t.equal(q.take('first'), false, 'remembered at 10,000 keys')
  for (let i = 9_999; i < 20_000; i++) q.take(`k${i}`)
  t.equal(q.take('first'), true, 'forgotten once more keys arrived')
})
