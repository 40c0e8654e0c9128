import type { Clock, TimerHandle } from '../clock.ts'

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
export function deadline (clock: Clock, ms: number, signals: Array<AbortSignal | undefined>, budgetMs = ms): Deadline {
  return new Linked(clock, ms, signals, budgetMs)
}

/** What follows a signal (`followAbort`): called once, when it aborts. */
export interface AbortFollower { handleEvent(): void }

/** What tells a signal's followers (see `followAbort`). */
interface Owner {
  follow(f: AbortFollower): void
  unfollow(f: AbortFollower): void
}
/** The owner a signal is the signal of (see `followAbort`). */
const OWNER = Symbol('mcp-mesh.signal-owner')
type Owned = AbortSignal & { [OWNER]?: Owner }

/**
 * Calls `follower.handleEvent()` when `signal` aborts: the signal's owner tells it directly when
 * the signal is one of ours (`OwnedSignal`, `followable`: a plain list, where `addEventListener`
 * allocates and validates on every call), else an `abort` listener does. Undo with
 * `unfollowAbort`. Nothing is called for a signal that has already aborted.
 */
export function followAbort (signal: AbortSignal, follower: AbortFollower): void {
  const owner = (signal as Owned)[OWNER]
  if (owner !== undefined) owner.follow(follower)
  else signal.addEventListener('abort', follower, { once: true })
}

/** Stops following (see `followAbort`). */
export function unfollowAbort (signal: AbortSignal, follower: AbortFollower): void {
  const owner = (signal as Owned)[OWNER]
  if (owner !== undefined) owner.unfollow(follower)
  else signal.removeEventListener('abort', follower)
}

/**
 * An abort controller whose signal's followers (`followAbort`) are a plain list it tells itself
 * when it aborts (`abortWith`): the per-call signals of the call path (a deadline, an attempt's
 * watch), which every call links to others.
 */
export class OwnedSignal implements Owner {
  readonly #controller = new AbortController()
  #followers: AbortFollower[] | undefined

  constructor () {
    (this.#controller.signal as Owned)[OWNER] = this
  }

  get signal (): AbortSignal {
    return this.#controller.signal
  }

  follow (f: AbortFollower): void {
    (this.#followers ??= []).push(f)
  }

  unfollow (f: AbortFollower): void {
    const at = this.#followers?.indexOf(f) ?? -1
    if (at >= 0) this.#followers!.splice(at, 1)
  }

  /** Aborts the signal with `reason` (once), then tells its followers. */
  protected abortWith (reason: unknown): void {
    if (this.#controller.signal.aborted) return
    this.#controller.abort(reason)
    const followers = this.#followers
    this.#followers = undefined
    if (followers !== undefined) for (const f of followers) f.handleEvent()
  }
}

/**
 * Makes a long-lived signal (a node's stop signal, followed by every call in flight) tell its
 * followers through one listener of its own, so following it costs a set insertion rather than
 * an `abort` listener per call. Returns the signal; a signal already ours is left as it is.
 */
export function followable (signal: AbortSignal): AbortSignal {
  if ((signal as Owned)[OWNER] !== undefined || signal.aborted) return signal
  const followers = new Set<AbortFollower>()
  signal.addEventListener('abort', () => {
    const told = [...followers]
    followers.clear()
    for (const f of told) f.handleEvent()
  }, { once: true })
  ;(signal as Owned)[OWNER] = { follow (f) { followers.add(f) }, unfollow (f) { followers.delete(f) } }
  return signal
}

/**
 * The deadline as one object: it is its signals' listener (`handleEvent`), so a call allocates no
 * closures for it, and the signals are kept as given (undefined ones skipped, not filtered out).
 */
class Linked extends OwnedSignal implements Deadline {
  readonly #clock: Clock
  readonly #signals: Array<AbortSignal | undefined>
  readonly #timer: TimerHandle | undefined

  constructor (clock: Clock, ms: number, signals: Array<AbortSignal | undefined>, budgetMs: number) {
    super()
    this.#clock = clock
    this.#signals = signals
    for (const s of signals) {
      if (s === undefined) continue
      if (s.aborted) { this.abortWith(s.reason); break }
      followAbort(s, this)
    }
    this.#timer = this.signal.aborted
      ? undefined
      : clock.setTimeout(() => { this.abortWith(timeoutReason(budgetMs)) }, ms)
  }

  /** A linked signal aborted. */
  handleEvent (): void {
    for (const s of this.#signals) {
      if (s?.aborted === true) { this.abortWith(s.reason); return }
    }
  }

  done (): void {
    if (this.#timer !== undefined) this.#clock.clearTimeout(this.#timer)
    for (const s of this.#signals) if (s !== undefined) unfollowAbort(s, this)
  }
}

/** What a deadline of `ms` aborts with: a `TimeoutError`, as `AbortSignal.timeout`'s. */
export function timeoutReason (ms: number): DOMException {
  return new DOMException(`timed out after ${ms} ms`, 'TimeoutError')
}

/**
 * A `deadline` of `ms` from now, linked to `linked`, made only when its signal is first read:
 * most tool handlers never look at theirs, and then a call pays no controller, timer or
 * listener for it. Read later, the signal aborts when the same deadline would have (at once
 * when that has passed or `linked` has aborted), with the same reason.
 */
export class LazyDeadline {
  /** When it ends, on the clock. */
  readonly at: number
  readonly #clock: Clock
  readonly #ms: number
  readonly #linked: AbortSignal
  #made: Deadline | undefined

  constructor (clock: Clock, ms: number, linked: AbortSignal) {
    this.#clock = clock
    this.#ms = ms
    this.#linked = linked
    this.at = clock.now() + ms
  }

  get signal (): AbortSignal {
    if (this.#made === undefined) {
      const left = this.at - this.#clock.now()
      if (left > 0 || this.#linked.aborted) this.#made = deadline(this.#clock, left, [this.#linked], this.#ms)
      else {
        const passed = new AbortController()
        passed.abort(timeoutReason(this.#ms))
        this.#made = { signal: passed.signal, done () {} }
      }
    }
    return this.#made.signal
  }

  /** Clears the timer and unlinks, if the signal was made. */
  done (): void {
    this.#made?.done()
  }
}

/** "timed out after N ms" when the deadline's reason says how long (see `deadline`), else "timed out". */
export function timedOutAfter (reason: DOMException): string {
  return /^timed out after \d+ ms$/.test(reason.message) ? reason.message : 'timed out'
}
