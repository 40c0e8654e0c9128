// The one way tests wait: for a condition (an event they can observe), never for a fixed time.

/**
 * Polls `check` every `everyMs` until it returns true, and resolves with the milliseconds it took.
 * `limitMs` is a bound on waiting (the test fails after it), not a performance assertion: keep it
 * generous, since 2 busy cores can make anything slow.
 */
export async function waitFor (what: string, check: () => Promise<boolean> | boolean, limitMs = 15_000, everyMs = 25): Promise<number> {
  const start = Date.now()
  for (;;) {
    if (await check()) return Date.now() - start
    if (Date.now() - start > limitMs) throw new Error(`timed out after ${limitMs} ms waiting for: ${what}`)
    await new Promise((resolve) => setTimeout(resolve, everyMs))
  }
}
