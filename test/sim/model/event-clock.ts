// Discrete-event time for the model simulation: timers sit in a binary heap and fire in order;
// after each instant the process drains the promise chains they started (all model work is
// in memory, so nothing waits on real I/O). A million timers cost log(n) each, not a scan.
import type { Clock, TimerHandle } from '../../../src/clock.ts'

interface Timer { at: number, seq: number, fn: () => void }

/** A clock that advances only through `run`, firing every timer due on the way. */
export class EventClock implements Clock {
  #now: number
  #seq = 0
  #heap: Timer[] = []
  readonly #live = new Set<number>()

  constructor (start = 1_700_000_000_000) {
    this.#now = start
  }

  /** Whole milliseconds, like `Date.now()` (signed messages carry integer times). */
  now (): number {
    return Math.floor(this.#now)
  }

  /** The exact virtual time, with the fractions that sub-millisecond link delays leave. */
  preciseNow (): number {
    return this.#now
  }

  setTimeout (fn: () => void, ms: number): TimerHandle {
    const t = { at: this.#now + Math.max(0, ms), seq: ++this.#seq, fn }
    this.#live.add(t.seq)
    this.#push(t)
    return { id: t.seq }
  }

  clearTimeout (handle: TimerHandle): void {
    this.#live.delete(handle.id as number)
  }

  /** Timers still due (tests check that a stopped simulation leaves none of its own). */
  get pending (): number {
    return this.#live.size
  }

  /** Runs `ms` of virtual time: every due timer fires in order, with promise chains drained between instants. */
  async run (ms: number): Promise<void> {
    const end = this.#now + ms
    for (;;) {
      const next = this.#peek()
      if (next === undefined || next.at > end) break
      this.#now = next.at
      // Everything due at this instant, then let the work it started settle before time moves on.
      for (let t = this.#peek(); t !== undefined && t.at === this.#now; t = this.#peek()) {
        this.#pop()
        this.#live.delete(t.seq)
        t.fn()
      }
      await new Promise((resolve) => setImmediate(resolve))
    }
    this.#now = Math.max(this.#now, end)
  }

  #peek (): Timer | undefined {
    while (this.#heap.length > 0 && !this.#live.has(this.#heap[0].seq)) this.#pop()
    return this.#heap[0]
  }

  #less (a: Timer, b: Timer): boolean {
    return a.at < b.at || (a.at === b.at && a.seq < b.seq)
  }

  #push (t: Timer): void {
    const h = this.#heap
    h.push(t)
    let i = h.length - 1
    while (i > 0) {
      const p = (i - 1) >> 1
      if (!this.#less(h[i], h[p])) break
      ;[h[i], h[p]] = [h[p], h[i]]
      i = p
    }
  }

  #pop (): void {
    const h = this.#heap
    const last = h.pop()!
    if (h.length === 0) return
    h[0] = last
    let i = 0
    for (;;) {
      const l = 2 * i + 1
      const r = l + 1
      let m = i
      if (l < h.length && this.#less(h[l], h[m])) m = l
      if (r < h.length && this.#less(h[r], h[m])) m = r
      if (m === i) break
      ;[h[i], h[m]] = [h[m], h[i]]
      i = m
    }
  }
}
