import type { Clock } from '../clock.ts'

/** One call's signal: aborts on its deadline or when any linked signal aborts. */
export interface Deadline {
  readonly signal: AbortSignal
  /** Clears the timer and unlinks; call it when the call settles. */
  done(): void
}

/**
 * A cheaper `AbortSignal.any([...signals, AbortSignal.timeout(ms)])` for the hot path: one
 * controller, one timer on the injected clock, listeners removed when the call settles. The
 * timeout's reason is a `TimeoutError` DOMException, as with `AbortSignal.timeout`.
 */
export function deadline (clock: Clock, ms: number, signals: Array<AbortSignal | undefined>): Deadline {
  const controller = new AbortController()
  const linked = signals.filter((s): s is AbortSignal => s !== undefined)
  const onAbort = function (this: AbortSignal): void { controller.abort(this.reason) }
  for (const s of linked) {
    if (s.aborted) { controller.abort(s.reason); break }
    s.addEventListener('abort', onAbort, { once: true })
  }
  const timer = controller.signal.aborted
    ? undefined
    : clock.setTimeout(() => controller.abort(new DOMException(`timed out after ${ms} ms`, 'TimeoutError')), ms)
  return {
    signal: controller.signal,
    done () {
      if (timer !== undefined) clock.clearTimeout(timer)
      for (const s of linked) s.removeEventListener('abort', onAbort)
    },
  }
}

/** "timed out after N ms" when the deadline's reason says how long (see `deadline`), else "timed out". */
export function timedOutAfter (reason: DOMException): string {
  return /^timed out after \d+ ms$/.test(reason.message) ? reason.message : 'timed out'
}
