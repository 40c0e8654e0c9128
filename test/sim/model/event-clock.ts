// Discrete-event time for the model simulation: the manual clock's timer heap, stepped from
// instant to instant; after each instant the process drains the promise chains its timers
// started (all model work is in memory, so nothing waits on real I/O).
import { ManualClock } from '../../../src/clock.ts'

/** A clock that advances only through `run`, firing every timer due on the way. */
export class EventClock extends ManualClock {
  /** Whole milliseconds, like `Date.now()` (signed messages carry integer times). */
  override now (): number {
    return Math.floor(super.now())
  }

  /** The exact virtual time, with the fractions that sub-millisecond link delays leave. */
  preciseNow (): number {
    return super.now()
  }

  /** Runs `ms` of virtual time: every due timer fires in order, with promise chains drained between instants. */
  async run (ms: number): Promise<void> {
    const end = super.now() + ms
    for (let fn = this.takeDue(end); fn !== undefined; fn = this.takeDue(end)) {
      // Everything due at this instant, then let the work it started settle before time moves on.
      const at = super.now()
      fn()
      for (let same = this.takeDue(at); same !== undefined; same = this.takeDue(at)) same()
      await new Promise((resolve) => setImmediate(resolve))
    }
    this.advance(end - super.now())
  }
}
