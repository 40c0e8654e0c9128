// Virtual time for the simulation: the mesh's own timers (probing, timeouts, suspicion,
// anti-entropy, upkeep) fire only when the harness advances the clock, and it advances only when
// the process has drained the work the last step started. So a node never times out because the
// shared event loop was busy with the others: each node behaves as if it had its own CPU, and
// protocol time is measured apart from the cost of simulating it. libp2p's and gossipsub's
// internal timers stay on real time; message delivery takes no virtual time (zero latency).
import { ManualClock } from '../../src/clock.ts'

/** The manual clock, advanced in steps with the process drained between them. */
export class VirtualClock extends ManualClock {
  constructor (start = Date.now()) {
    super(start)
  }

  /** Advances by `ms` in steps of at most `stepMs`, waiting for the process to be quiet after each. */
  async run (ms: number, stepMs = 10): Promise<void> {
    const end = this.now() + ms
    while (this.now() < end) {
      this.advance(Math.min(stepMs, end - this.now()))
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
