// TaskScope: every timer it starts is gone once the node stops, even for work begun after stop().
import t from 'tap'
import { ManualClock } from '../../src/clock.ts'
import { TaskScope } from '../../src/gossip/scope.ts'

t.test('a bounded operation begun after stop() sets no timer, and sees an aborted signal', async (t) => {
  const clock = new ManualClock()
  const scope = new TaskScope(clock, Math.random)
  scope.start()
  scope.stop()
  let seen: boolean | undefined
  void scope.bounded(1_000, {}, async (signal) => { seen = signal.aborted; return new Promise<void>(() => {}) })
  t.equal(seen, true)
  // Work begun after stop() (a probe that was in flight moving to its next phase) used to start a
  // timer that nothing cleared in time: test/node/lifecycle.test.ts caught one on a loaded host.
  t.equal(clock.pending, 0, 'no timer left')
})

t.test('a bounded wait that is running when the node stops ends, and its timer is cleared', async (t) => {
  const clock = new ManualClock()
  const scope = new TaskScope(clock, Math.random)
  scope.start()
  const waiting = scope.bounded(1_000, {}, async (signal) => new Promise<void>((resolve) => { signal.addEventListener('abort', () => { resolve() }, { once: true }) }))
  t.equal(clock.pending, 1)
  scope.stop()
  await waiting
  t.equal(clock.pending, 0, 'no timer left')
})

t.test('sleep ends after its time, at stop(), or at once after stop(), and leaves no timer', async (t) => {
  const clock = new ManualClock()
  const scope = new TaskScope(clock, Math.random)
  scope.start()
  let slept = false
  const sleeping = scope.sleep(500).then(() => { slept = true })
  clock.advance(499)
  await Promise.resolve()
  t.equal(slept, false, 'not before its time')
  clock.advance(1)
  await sleeping
  t.equal(clock.pending, 0)

  const cut = scope.sleep(10_000)
  scope.stop()
  await cut
  t.equal(clock.pending, 0, 'stop() ends it and clears its timer')
  await scope.sleep(10_000)
  t.equal(clock.pending, 0, 'after stop(): at once, no timer')
})
