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
}

/** A clock that only moves when told: for unit tests and the model simulation. */
export class ManualClock implements Clock {
  #now: number
  #seq = 0
  readonly #timers = new Map<number, { at: number, fn: () => void }>()

  constructor (start = 1_700_000_000_000) {
    this.#now = start
  }

  now (): number {
    return this.#now
  }

  setTimeout (fn: () => void, ms: number): TimerHandle {
    const id = ++this.#seq
    this.#timers.set(id, { at: this.#now + Math.max(0, ms), fn })
    return { id }
  }

  clearTimeout (handle: TimerHandle): void {
    this.#timers.delete(handle.id as number)
  }

  /** Number of pending timers (tests check nothing is left behind). */
  get pending (): number {
    return this.#timers.size
  }

  /** Moves time forward, firing due timers in order (timers they schedule fire too if due). */
  advance (ms: number): void {
    const end = this.#now + ms
    for (;;) {
      let nextId = -1
      let nextAt = Infinity
      for (const [id, t] of this.#timers) {
        if (t.at < nextAt || (t.at === nextAt && id < nextId)) { nextAt = t.at; nextId = id }
      }
      if (nextId === -1 || nextAt > end) break
      const t = this.#timers.get(nextId)!
      this.#timers.delete(nextId)
      this.#now = nextAt
      t.fn()
    }
    this.#now = end
  }
}
