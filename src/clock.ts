/**
 * Time is injected everywhere logic depends on it, so tests and simulations drive it.
 * Only `systemClock` touches the real timers.
 */
export interface Clock {
  /** Milliseconds since the epoch. */
  now(): number
  /** Runs `fn` after `ms`; returns a handle for `clearTimeout`. */
  setTimeout(fn: () => void, ms: number): TimerHandle
  clearTimeout(handle: TimerHandle): void
  /**
   * Runs `fn` once the work already waiting has run (I/O that arrived, callbacks queued ahead).
   * A timeout fires in the timers phase, before the poll phase reads the sockets: after a busy
   * spell an answer that arrived in time may still sit unread. Deciding "no answer" in a deferred
   * callback sees it, so a slow event loop does not read as a slow peer.
   */
  defer(fn: () => void): void
}

/** Opaque timer handle. */
export type TimerHandle = { readonly id: unknown }

/** The real clock. Timers are unref'd: a mesh node never keeps a process alive on its own timers. */
export const systemClock: Clock = {
  now: () => Date.now(),
  setTimeout (fn, ms) {
    const t = setTimeout(fn, ms)
    t.unref?.()
    return { id: t }
  },
  clearTimeout (handle) {
    clearTimeout(handle.id as ReturnType<typeof setTimeout>)
  },
  defer (fn) {
    setImmediate(fn) // the check phase runs after the poll phase has read what arrived
  },
}

interface ManualTimer { at: number, seq: number, fn: () => void }

/** A clock that only moves when told: for unit tests and the simulations. Timers sit in a binary heap. */
export class ManualClock implements Clock {
  #now: number
  #seq = 0
  #heap: ManualTimer[] = []
  readonly #live = new Set<number>()

  constructor (start = 1_700_000_000_000) {
    this.#now = start
  }

  now (): number {
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

  /** A zero-delay timer: it runs within the same `advance`, after the timers due before it. */
  defer (fn: () => void): void {
    this.setTimeout(fn, 0)
  }

  /** Number of pending timers (tests check nothing is left behind). */
  get pending (): number {
    return this.#live.size
  }

  /** Moves time forward, firing due timers in order (timers they schedule fire too if due). */
  advance (ms: number): void {
    const end = this.#now + ms
    for (let fn = this.takeDue(end); fn !== undefined; fn = this.takeDue(end)) fn()
    this.#now = Math.max(this.#now, end)
  }

  /**
   * For clocks that step time themselves (the simulations): removes the next timer due at or
   * before `end`, moves time to it, and returns its callback; undefined when none is due.
   */
  takeDue (end: number): (() => void) | undefined {
    const next = this.#peek()
    if (next === undefined || next.at > end) return undefined
    this.#pop()
    this.#live.delete(next.seq)
    this.#now = next.at
    return next.fn
  }

  #peek (): ManualTimer | undefined {
    while (this.#heap.length > 0 && !this.#live.has(this.#heap[0].seq)) this.#pop()
    return this.#heap[0]
  }

  #less (a: ManualTimer, b: ManualTimer): boolean {
    return a.at < b.at || (a.at === b.at && a.seq < b.seq)
  }

  #push (t: ManualTimer): void {
    const h = this.#heap
    h.push(t)
    for (let i = h.length - 1; i > 0;) {
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
    for (let i = 0; ;) {
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
