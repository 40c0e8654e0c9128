// The circuit breaker's states on the injected clock: closed, open after N failures in a row, a
// cool-off growing with each ejection (capped), one trial call when half-open, the ejection
// share, and the cap on calls in flight.
import t from 'tap'
import { ManualClock } from '../../src/clock.ts'
import { Breakers } from '../../src/proxy/breaker.ts'

const policy = { consecutiveFailures: 3, baseEjectionMs: 1_000, maxEjectionMs: 2_500, maxEjectionPercent: 10, maxRequestsPerProvider: 2 }
const call = (b: Breakers, id: string, outcome: 'ok' | 'failed' | 'neither'): true | 'open' | 'busy' => {
  const admitted = b.admit(id)
  if (admitted === true) { b.start(id); b.end(id, outcome) }
  return admitted
}

t.test('opens after N failures in a row; an answer in between starts the count over', async (t) => {
  const clock = new ManualClock()
  const b = new Breakers(clock, policy)
  call(b, 'p', 'failed'); call(b, 'p', 'failed'); call(b, 'p', 'ok')
  call(b, 'p', 'failed'); call(b, 'p', 'failed')
  t.equal(b.circuit('p'), 'closed', 'four failures, not in a row')
  call(b, 'p', 'neither')
  t.equal(b.circuit('p'), 'closed', 'a call the caller aborted counts neither way')
  call(b, 'p', 'failed')
  t.equal(b.circuit('p'), 'open', 'three in a row')
  t.equal(b.admit('p'), 'open', 'no call goes to it')
  t.equal(b.opensAt('p'), clock.now() + 1_000, 'for the base cool-off')
})

t.test('half-open: one trial call; its failure opens it for longer (capped), its success closes it', async (t) => {
  const clock = new ManualClock()
  const b = new Breakers(clock, policy)
  for (let i = 0; i < 3; i++) call(b, 'p', 'failed')
  clock.advance(1_000)
  t.equal(b.circuit('p'), 'half-open')
  t.equal(b.admit('p'), true, 'the first call is the trial')
  b.start('p')
  t.equal(b.admit('p'), 'open', 'others wait for its outcome')
  t.same([...b.ejected(['p'])], ['p'], 'and resolution leaves it out meanwhile')
  b.end('p', 'failed')
  t.equal(b.opensAt('p'), clock.now() + 2_000, 'the second ejection lasts twice the base')
  clock.advance(2_000)
  call(b, 'p', 'failed')
  t.equal(b.opensAt('p'), clock.now() + 2_500, 'the third is capped at maxEjectionMs')
  clock.advance(2_500)
  t.equal(call(b, 'p', 'ok'), true)
  t.equal(b.circuit('p'), 'closed', 'the trial passed')
  clock.advance(2_501)
  call(b, 'p', 'ok')
  for (let i = 0; i < 3; i++) call(b, 'p', 'failed')
  t.equal(b.opensAt('p'), clock.now() + 1_000, 'healthy for maxEjectionMs: the next cool-off starts from the base again')
})

t.test('at most the ejection share of a dependency\'s providers is left out, and at least one', async (t) => {
  const clock = new ManualClock()
  const b = new Breakers(clock, policy)
  for (const id of ['a', 'b']) for (let i = 0; i < 3; i++) call(b, id, 'failed')
  t.same([...b.ejected(['a', 'b', 'c'])], ['a'], '10 % of 3 rounds to 0: one is left out all the same')
  const many = Array.from({ length: 20 }, (_, i) => `p${i}`)
  t.same([...b.ejected(['a', 'b', ...many])], ['a', 'b'], '10 % of 22: two')
})

t.test('the cap on calls in flight to one provider', async (t) => {
  const b = new Breakers(new ManualClock(), policy)
  t.equal(b.admit('p'), true); b.start('p')
  t.equal(b.admit('p'), true); b.start('p')
  t.equal(b.admit('p'), 'busy', 'two in flight: the third is refused')
  b.end('p', 'ok')
  t.equal(b.admit('p'), true, 'one ended: room again')
})

t.test('circuits() counts the open and half-open circuits now, for metrics', async (t) => {
  const clock = new ManualClock()
  const b = new Breakers(clock, policy)
  t.same(b.circuits(), { open: 0, halfOpen: 0 })
  for (let i = 0; i < 3; i++) call(b, 'p', 'failed')
  clock.advance(500)
  for (let i = 0; i < 3; i++) call(b, 'q', 'failed')
  call(b, 'r', 'ok')
  t.same(b.circuits(), { open: 2, halfOpen: 0 }, 'p and q open, r closed')
  clock.advance(500)
  t.same(b.circuits(), { open: 1, halfOpen: 1 }, 'p half-opened after its cool-off')
  b.forget('q')
  t.same(b.circuits(), { open: 0, halfOpen: 1 }, 'a forgotten provider is not counted')
})
