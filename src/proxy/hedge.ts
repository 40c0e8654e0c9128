// Hedging (as gRPC's hedging policy and Envoy's hedge on per-try timeout): a read-only or
// idempotent call still unanswered after `hedgeAfterMs` is also sent to another provider; the
// first answer wins and the other attempt is cancelled (its abort sends MCP cancellation).
import type { CallToolResult } from '@modelcontextprotocol/sdk/types.js'
import type { Clock } from '../clock.ts'
import type { Candidate } from '../topology/resolver.ts'

/** The second attempt, once sent. */
export interface Spare {
  c: Candidate
  result: Promise<CallToolResult>
  /** Cancels it (the first attempt answered). */
  cancel(): void
}

/** How a hedged call ended: the answer, who gave it, and the first attempt's failure if it failed. */
export interface Hedged {
  raw: CallToolResult
  /** The spare's provider, when the spare answered first. */
  by?: Candidate
  /** Why the first attempt failed, when it failed before the spare answered. */
  firstError?: unknown
}

/**
 * Waits for `first`; after `afterMs` without its answer, sends `spare()` (undefined: no other
 * provider may take it) and takes whichever answers first, cancelling the other. When both fail,
 * rejects with the first's error and hands the spare's to `spareFailed`.
 */
export async function hedge (clock: Clock, afterMs: number, first: Promise<CallToolResult>, cancelFirst: () => void, spare: () => Spare | undefined, spareFailed: (c: Candidate, err: unknown) => void): Promise<Hedged> {
  return await new Promise<Hedged>((resolve, reject) => {
    let settled = false
    let s: Spare | undefined
    let spareDown = false
    let firstDown: { err: unknown } | undefined
    const timer = clock.setTimeout(() => {
      if (settled) return
      s = spare()
      if (s === undefined) return
      const sent = s
      sent.result.then((raw) => {
        if (settled) return
        settled = true
        cancelFirst()
        resolve({ raw, by: sent.c, ...(firstDown === undefined ? {} : { firstError: firstDown.err }) })
      }, (err: unknown) => {
        if (settled) return
        spareDown = true
        spareFailed(sent.c, err)
        if (firstDown !== undefined) { settled = true; reject(firstDown.err) }
      })
    }, afterMs)
    first.then((raw) => {
      if (settled) return
      settled = true
      clock.clearTimeout(timer)
      s?.cancel()
      resolve({ raw })
    }, (err: unknown) => {
      if (settled) return
      clock.clearTimeout(timer)
      // The spare may still answer: wait for it.
      if (s === undefined || spareDown) { settled = true; reject(err) } else firstDown = { err }
    })
  })
}
