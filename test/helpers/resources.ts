// What a test checks to prove a stopped node leaves nothing running.
import { systemClock } from '../../src/clock.ts'
import type { Clock, TimerHandle } from '../../src/clock.ts'
import { waitFor } from './wait.ts'

/** The system clock, counting the timers the mesh holds (libp2p's own internals use their own). */
export function countingClock (): Clock & { pending: Set<TimerHandle> } {
  const pending = new Set<TimerHandle>()
  return {
    pending,
    now: () => systemClock.now(),
    setTimeout (fn, ms) {
      const h: TimerHandle = systemClock.setTimeout(() => { pending.delete(h); fn() }, ms)
      pending.add(h)
      return h
    },
    clearTimeout (h) { pending.delete(h); systemClock.clearTimeout(h) },
    defer: (fn) => { systemClock.defer(fn) },
  }
}

/** Active resources of the process by kind (TCPSocketWrap, TCPServerWrap, Timeout, ...). */
export function handles (): Record<string, number> {
  const count: Record<string, number> = {}
  for (const r of process.getActiveResourcesInfo()) count[r] = (count[r] ?? 0) + 1
  return count
}

/**
 * Waits (bounded) until no more sockets or listeners are open than at `baseline`, and returns the
 * handles then; past the bound it returns them anyway, so the caller's assertion names the leak.
 */
export async function settleHandles (baseline: Record<string, number>): Promise<Record<string, number>> {
  await waitFor('sockets and listeners to be released', () => {
    const now = handles()
    return (now.TCPSocketWrap ?? 0) <= (baseline.TCPSocketWrap ?? 0) && (now.TCPServerWrap ?? 0) <= (baseline.TCPServerWrap ?? 0)
  }, 10_000, 10).catch(() => {})
  return handles()
}
