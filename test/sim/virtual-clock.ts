// Virtual time for the simulation: the mesh's own timers (probing, timeouts, suspicion,
// anti-entropy, upkeep) fire only when the harness advances the clock, and it advances only when
// the process has drained the work the last step started. So a node never times out because the
// shared event loop was busy with 999 others: each node behaves as if it had its own CPU, and
// protocol time is measured apart from the cost of simulating it. libp2p's and gossipsub's
// internal timers stay on real time; message delivery takes no virtual time (zero latency).
import type { Clock, TimerHandle } from '../../src/clock.ts'

/** A clock that moves in steps, draining real work between them. */
export class VirtualClock implements Clock {
  #now: number
  #seq = 0
  readonly #timers = new Map<number, { at: number, fn: () => void }>()

  constructor (start = Date.now()) {
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

  /**
   * Advances by `ms` in steps of at most `stepMs`: at each step, fires the timers that are due
   * (in time order), then waits until the process is quiet before the next step.
   */
  async advance (ms: number, stepMs = 10): Promise<void> {
    const end = this.#now + ms
    while (this.#now < end) {
      this.#now = Math.min(end, this.#now + stepMs)
      const due = [...this.#timers].filter(([, t]) => t.at <= this.#now).sort((a, b) => a[1].at - b[1].at || a[0] - b[0])
      for (const [id, t] of due) {
        if (!this.#timers.has(id)) continue // cleared by an earlier timer of this step
        this.#timers.delete(id)
        t.fn()
      }
      await quiet()
    }
  }
}

/** Resolves once three turns of the event loop in a row found nothing to do. */
async function quiet (): Promise<void> {
  let calm = 0
  while (calm < 3) {
    const t = performance.now()
    await new Promise((resolve) => setImmediate(resolve))
    calm = performance.now() - t < 0.5 ? calm + 1 : 0
  }
}
