// The one way tests wait: for a condition (an event they can observe), never for a fixed time.

/**
 * Polls `check` every `everyMs` until it returns true, and resolves with the milliseconds it took.
 * `limitMs` is a bound on waiting (the test fails after it, even while a check hangs, such as a
 * question to a stopped process), not a performance assertion: keep it generous, since 2 busy
 * cores can make anything slow.
 */
export async function waitFor (what: string, check: () => Promise<boolean> | boolean, limitMs = 15_000, everyMs = 25): Promise<number> {
  const start = Date.now()
  let timer: NodeJS.Timeout | undefined
  const expired = new Promise<never>((_resolve, reject) => {
    timer = setTimeout(() => { reject(new Error(`timed out after ${limitMs} ms waiting for: ${what}`)) }, limitMs)
  })
  try {
    for (;;) {
      if (await Promise.race([check(), expired])) return Date.now() - start
      await Promise.race([new Promise((resolve) => setTimeout(resolve, everyMs)), expired])
    }
  } finally {
    clearTimeout(timer)
  }
}
