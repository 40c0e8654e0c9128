// The SSE parser and the per-call deadline, and how the call path follows signals: small pieces on every call's path.
import t from 'tap'
import { SseParser } from '../../src/proxy/sse.ts'
import { LazyDeadline, deadline, followAbort, followable, unfollowAbort } from '../../src/proxy/deadline.ts'
import { ManualClock } from '../../src/clock.ts'

t.test('SSE: events across chunk boundaries, CRLF, multi-line data, comments and other fields', async (t) => {
  const p = new SseParser()
  t.same(p.push(': comment\nevent: message\ndata: {"a"'), [])
  t.same(p.push(':1}\n\n'), ['{"a":1}'], 'an event split across chunks')
  t.same(p.push('id: 7\r\nretry: 10\r\ndata: one\r\ndata: two\r\n\r\n'), ['one\ntwo'], 'CRLF lines, data lines joined by newline')
  t.same(p.push('data:no-space\n\ndata: x\n'), ['no-space'], 'the space after the colon is optional; an unfinished event waits')
  t.same(p.push('\n'), ['x'])
  t.same(p.push('\n\n'), [], 'blank lines without data make no event')
})

t.test('deadline: times out on the clock with a TimeoutError, follows linked signals, cleans up', async (t) => {
  const clock = new ManualClock(0)
  const d = deadline(clock, 1_000, [])
  clock.advance(999)
  t.equal(d.signal.aborted, false)
  clock.advance(1)
  t.equal(d.signal.aborted, true)
  t.equal((d.signal.reason as DOMException).name, 'TimeoutError')
  d.done()

  const outer = new AbortController()
  const linked = deadline(clock, 1_000, [outer.signal, undefined])
  outer.abort(new Error('caller gave up'))
  t.equal(linked.signal.aborted, true)
  t.equal((linked.signal.reason as Error).message, 'caller gave up', 'the linked reason is kept')
  linked.done()

  const already = new AbortController()
  already.abort('stopped')
  t.equal(deadline(clock, 1_000, [already.signal]).signal.reason, 'stopped', 'an already aborted signal aborts at once')

  const fresh = new AbortController()
  const clean = deadline(clock, 1_000, [fresh.signal])
  clean.done()
  clock.advance(5_000)
  fresh.abort('late')
  t.equal(clean.signal.aborted, false, 'done() clears the timer and unlinks the signals')
})

t.test('lazy deadline: no timer until its signal is read; read late, it is as the deadline would be', async (t) => {
  const clock = new ManualClock(0)
  const caller = new AbortController()
  const unread = new LazyDeadline(clock, 1_000, caller.signal)
  t.equal(unread.at, 1_000)
  t.equal(clock.pending, 0, 'nothing armed while nobody reads the signal')
  unread.done()

  const early = new LazyDeadline(clock, 1_000, caller.signal)
  clock.advance(400)
  const s = early.signal
  t.equal(s.aborted, false)
  t.equal(early.signal, s, 'one signal, made once')
  clock.advance(599)
  t.equal(s.aborted, false, 'it ends where the deadline started counting, not from the read')
  clock.advance(1)
  t.equal((s.reason as DOMException).name, 'TimeoutError')
  t.equal((s.reason as DOMException).message, 'timed out after 1000 ms', 'the reason names the whole budget')
  early.done()

  const late = new LazyDeadline(clock, 500, caller.signal)
  clock.advance(500)
  t.equal(late.signal.aborted, true, 'read once passed, it is aborted at once')
  t.equal((late.signal.reason as DOMException).message, 'timed out after 500 ms')
  late.done()

  const linked = new LazyDeadline(clock, 1_000, caller.signal)
  const ls = linked.signal
  caller.abort(new Error('caller gave up'))
  t.equal((ls.reason as Error).message, 'caller gave up', 'it follows the linked signal')
  t.equal((new LazyDeadline(clock, 1_000, caller.signal).signal.reason as Error).message, 'caller gave up', 'made after the linked signal aborted: aborted with its reason')
  linked.done()
  t.equal(clock.pending, 0, 'done clears the timers')
})

t.test('following a deadline: told once when it aborts (timer or a linked signal); nested deadlines follow theirs; unfollowed, never', async (t) => {
  const clock = new ManualClock(0)
  let told = 0
  const f = { handleEvent () { told++ } }
  const outer = deadline(clock, 1_000, [])
  const inner = deadline(clock, 5_000, [outer.signal])
  followAbort(inner.signal, f)
  const gone = { handleEvent () { t.fail('unfollowed') } }
  followAbort(inner.signal, gone)
  unfollowAbort(inner.signal, gone)
  clock.advance(1_000)
  t.equal(inner.signal.aborted, true, 'the inner deadline follows the outer one')
  t.equal((inner.signal.reason as DOMException).message, 'timed out after 1000 ms', 'with its reason')
  t.equal(told, 1)
  clock.advance(10_000)
  t.equal(told, 1, 'once')
  inner.done()
  outer.done()

  const plain = new AbortController()
  let plainTold = 0
  const p = { handleEvent () { plainTold++ } }
  followAbort(plain.signal, p)
  plain.abort()
  t.equal(plainTold, 1, 'a signal of another kind: through its abort event')
  const caller = new AbortController()
  const linked = deadline(clock, 1_000, [undefined, caller.signal])
  let linkedTold = 0
  followAbort(linked.signal, { handleEvent () { linkedTold++ } })
  caller.abort(new Error('caller gave up'))
  t.equal(linkedTold, 1, 'a linked signal aborting tells the followers')
  t.equal((linked.signal.reason as Error).message, 'caller gave up')
  linked.done()
  t.equal(clock.pending, 0, 'no timer left')
})

t.test('followable: a long-lived signal tells its followers through one listener; unfollowed, never; aborted, each once', async (t) => {
  const stop = new AbortController()
  const signal = followable(stop.signal)
  t.equal(signal, stop.signal, 'the same signal')
  t.equal(followable(signal), signal, 'made followable once')
  const told: string[] = []
  const a = { handleEvent () { told.push('a') } }
  const b = { handleEvent () { told.push('b') } }
  followAbort(signal, a)
  followAbort(signal, a) // followed twice, told once (as addEventListener)
  followAbort(signal, b)
  unfollowAbort(signal, b)
  // A deadline linked to it is one more follower, and aborts with its reason.
  const clock = new ManualClock(0)
  const call = deadline(clock, 1_000, [signal])
  let listeners = 0
  signal.addEventListener('abort', () => { listeners++ })
  stop.abort(new Error('stopping'))
  t.same(told, ['a'], 'a once, b never')
  t.equal((call.signal.reason as Error).message, 'stopping', 'the linked deadline aborted with the reason')
  t.equal(listeners, 1, 'other listeners still hear it')
  call.done()
  const gone = new AbortController()
  gone.abort()
  t.equal(followable(gone.signal), gone.signal, 'an aborted signal is left as it is')
  let late = 0
  followAbort(gone.signal, { handleEvent () { late++ } })
  t.equal(late, 0, 'following an aborted signal tells nothing, as a listener added after the event')
})
