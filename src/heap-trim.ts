import { setFlagsFromString } from 'node:v8'
import { PerformanceObserver, constants, performance } from 'node:perf_hooks'
import type { EventLoopUtilization } from 'node:perf_hooks'
import { systemClock } from './clock.ts'
import type { Clock, TimerHandle } from './clock.ts'

// Why this exists (BENCHMARKS.md, "Memory"): an agent's start and its join grow V8's young
// generation to 16 MB semi-spaces. Idle in a mesh, the agent still allocates about 0.4 MB/s
// (probes and anti-entropy through libp2p's stream stack), which touches every page of it; V8
// then shrinks the young generation but keeps the freed pages in its pool, resident, until a
// memory-reducing GC. Its memory reducer runs that GC only when it judges the process idle, and
// 0.4 MB/s against a scavenger that copies little reads as "high allocation" to it, so the GC
// waits for its 100 s watchdog: about 19 MB more RSS until then. Memory saver mode (a V8 flag
// read at run time) makes the reducer's next tick run the GC at once; it is switched off again
// after that one GC, so the host application runs with V8's defaults everywhere else.

/** The event loop counts as idle below this utilization (the joined agent idles at about 1 %). */
const IDLE_UTILIZATION = 0.05
/** How often idleness is checked, and the first check after start. */
const CHECK_MS = 2_000
/** Memory saver mode stays on at most this long waiting for the reducer's GC (its tick is 8 s). */
const WINDOW_MS = 20_000
/** The first V8 whose reducer runs at once once memory saver mode is set at run time (Node 24). */
export const HEAP_TRIM_MIN_V8 = 13
/** A process never idle this long is left to V8's own watchdog. */
const GIVE_UP_MS = 10 * 60_000

/** What trimming touches in the process; tests replace it. */
export interface HeapTrimSeam {
  clock: Clock
  setFlags(flags: string): void
  /** Event loop utilization (0 to 1) since the previous call. */
  utilization(): number
  /** Calls `fn` after the next full (mark-compact) GC; the returned function stops watching. */
  onMajorGc(fn: () => void): () => void
  /** Node and V8 flags the process was started with (execArgv and NODE_OPTIONS). */
  hostFlags: readonly string[]
  /** V8's major version: the trim works from V8 13 (Node 24). */
  v8Major: number
}

/** How a trim ended: `gc` the reducing GC ran, `window` none came in time, `busy` never idle, `host` the host chose V8's memory flags itself, `unsupported` V8 older than 13 (Node 22), `stopped` aborted. */
export type HeapTrimOutcome = 'gc' | 'window' | 'busy' | 'host' | 'unsupported' | 'stopped'

function processSeam (): HeapTrimSeam {
  let last: EventLoopUtilization | undefined
  return {
    clock: systemClock,
    setFlags: setFlagsFromString,
    utilization () {
      const now = performance.eventLoopUtilization()
      const u = last === undefined ? now.utilization : performance.eventLoopUtilization(now, last).utilization
      last = now
      return u
    },
    onMajorGc (fn) {
      const obs = new PerformanceObserver((list) => {
        if (list.getEntries().some((e) => ((e as { detail?: { kind?: number } }).detail)?.kind === constants.NODE_PERFORMANCE_GC_MAJOR)) fn()
      })
      obs.observe({ entryTypes: ['gc'] })
      return () => { obs.disconnect() }
    },
    hostFlags: [...process.execArgv, ...(process.env.NODE_OPTIONS ?? '').split(/\s+/)],
    v8Major: Number(process.versions.v8.split('.')[0]),
  }
}

let claimed = false

/**
 * Once per process, at the first moment its event loop is idle: has V8 run one memory-reducing GC,
 * which returns the young generation's pooled pages (see above). It resolves with how it ended;
 * it never rejects. Calls while one runs or after one ended resolve `stopped` at once: one trim
 * serves every node in a process (one that was stopped lets the next call try again).
 * A host that set `--memory-saver-mode` or `--optimize-for-size` itself is left alone.
 */
export async function trimHeapWhenIdle (options: { signal?: AbortSignal } = {}, seam: HeapTrimSeam = processSeam()): Promise<HeapTrimOutcome> {
  if (claimed) return 'stopped'
  claimed = true
  if (seam.hostFlags.some((f) => /memory[-_]saver[-_]mode|optimize[-_]for[-_]size/.test(f))) return 'host'
  // On Node 22 (V8 12.4) the flag set at run time brought no reducing GC within the window (CI).
  if (seam.v8Major < HEAP_TRIM_MIN_V8) return 'unsupported'
  const { clock } = seam
  const started = clock.now()
  return new Promise<HeapTrimOutcome>((resolve) => {
    let timer: TimerHandle | undefined
    let unwatch: (() => void) | undefined
    let on = false
    let done = false
    const finish = (outcome: HeapTrimOutcome): void => {
      if (done) return
      done = true
      if (timer !== undefined) clock.clearTimeout(timer)
      unwatch?.()
      if (on) seam.setFlags('--no-memory-saver-mode')
      options.signal?.removeEventListener('abort', onAbort)
      if (outcome === 'stopped') claimed = false // a node started later in this process may trim
      resolve(outcome)
    }
    const onAbort = (): void => { finish('stopped') }
    const check = (): void => {
      if (seam.utilization() >= IDLE_UTILIZATION) {
        timer = clock.now() - started >= GIVE_UP_MS ? undefined : clock.setTimeout(check, CHECK_MS)
        if (timer === undefined) finish('busy')
        return
      }
      on = true
      seam.setFlags('--memory-saver-mode')
      unwatch = seam.onMajorGc(() => { finish('gc') })
      timer = clock.setTimeout(() => { finish('window') }, WINDOW_MS)
    }
    if (options.signal?.aborted === true) { finish('stopped'); return }
    options.signal?.addEventListener('abort', onAbort, { once: true })
    seam.utilization() // the first window starts now
    timer = clock.setTimeout(check, CHECK_MS)
  })
}

/** Lets the next trimHeapWhenIdle run again (tests only). */
export function resetHeapTrimForTests (): void {
  claimed = false
}
