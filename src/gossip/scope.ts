import type { AbortOptions } from '@libp2p/interface'
import { logger } from '../telemetry/log.ts'
import type { Clock, TimerHandle } from '../clock.ts'
import { MeshError } from '../errors.ts'

const log = logger('mesh:gossip')

/**
 * How late the node was in deciding that a `bounded` operation timed out (ms past its due time,
 * spent on work queued ahead of it), or undefined when `reason` is not such a timeout.
 */
export function timeoutLag (reason: unknown): number | undefined {
  return reason instanceof MeshError && reason.details?.timedOut === true ? reason.details.lagMs as number : undefined
}

/**
 * The timers and signals of one running gossip node, on its injected clock, and its source of
 * randomness. Every component schedules through it, so `stop()` ends every loop and timer at
 * once and nothing outlives the node.
 */
export class TaskScope {
  readonly clock: Clock
  readonly random: () => number
  readonly #abort = new AbortController()
  readonly #timers = new Set<TimerHandle>()
  #running = false

  constructor (clock: Clock, random: () => number) {
    this.clock = clock
    this.random = random
  }

  /** Aborts when the node stops. */
  get signal (): AbortSignal {
    return this.#abort.signal
  }

  /** True between `start()` and `stop()`. */
  get running (): boolean {
    return this.#running
  }

  start (): void {
    this.#running = true
  }

  /** Stops every loop and pending timer, and aborts every bounded operation. */
  stop (): void {
    this.#running = false
    this.#abort.abort(new MeshError('MESH_ERR_ABORTED', 'the node is stopping'))
    for (const t of this.#timers) this.clock.clearTimeout(t)
    this.#timers.clear()
  }

  /** Runs `fn` with a signal that aborts on stop(), on the caller's signal, or after `timeoutMs`; the timer is always cleared. */
  async bounded<T> (timeoutMs: number, options: AbortOptions, fn: (signal: AbortSignal) => Promise<T>): Promise<T> {
    // Stopped already: no timer (nothing would clear it in time), and `fn` sees an aborted signal.
    if (this.#abort.signal.aborted) return await fn(this.#abort.signal)
    const timeout = new AbortController()
    // Deferred past pending I/O: an answer that arrived in time but sits unread behind a busy
    // event loop still counts (see Clock.defer).
    const due = this.clock.now() + timeoutMs
    const timer = this.clock.setTimeout(() => {
      this.clock.defer(() => {
        // How late this node got round to it: a node that was itself busy cannot tell a slow peer from its own backlog.
        const lagMs = Math.max(0, this.clock.now() - due)
        timeout.abort(new MeshError('MESH_ERR_ABORTED', `timed out after ${timeoutMs} ms`, { details: { timedOut: true, lagMs } }))
      })
    }, timeoutMs)
    const signals = [this.#abort.signal, timeout.signal]
    if (options.signal !== undefined) signals.push(options.signal)
    try {
      return await fn(AbortSignal.any(signals))
    } finally {
      this.clock.clearTimeout(timer)
    }
  }

  /** Resolves after `ms`, or at once when the node stops (or has stopped); never rejects. */
  async sleep (ms: number): Promise<void> {
    await this.bounded(ms, {}, async (signal) => new Promise<void>((resolve) => {
      if (signal.aborted) resolve()
      else signal.addEventListener('abort', () => { resolve() }, { once: true })
    }))
  }

  /** Runs `fn` once after `ms`, unless the node stopped by then. */
  later (ms: number, fn: () => void): void {
    const h = this.clock.setTimeout(() => {
      this.#timers.delete(h)
      if (this.#running) fn()
    }, ms)
    this.#timers.add(h)
  }

  /** Runs `fn` every `intervalMs` until stop(); the first tick is jittered so nodes started together do not run in lockstep. */
  loop (intervalMs: number, fn: () => void): void {
    const tick = (): void => {
      try { fn() } catch (err) { log.error('periodic task failed: %s', err) }
      this.later(intervalMs, tick)
    }
    this.later(Math.floor(this.random() * intervalMs), tick)
  }

  /** Shuffles `arr` in place (Fisher-Yates) with the node's randomness, and returns it. */
  shuffle<T> (arr: T[]): T[] {
    for (let i = arr.length - 1; i > 0; i--) {
      const j = Math.floor(this.random() * (i + 1))
      ;[arr[i], arr[j]] = [arr[j], arr[i]]
    }
    return arr
  }
}
