/**
 * An incremental parser for `text/event-stream` bodies: feed it chunks, get each event's data.
 * Only `data:` lines matter to MCP (events are JSON-RPC messages); comments, `event:`, `id:`
 * and `retry:` lines are skipped.
 */
export class SseParser {
  #buffer = ''
  #data: string[] = []

  /** Feeds one chunk; returns the data of every event it completed. */
  push (chunk: string): string[] {
    this.#buffer += chunk
    const out: string[] = []
    let nl: number
    while ((nl = this.#buffer.indexOf('\n')) !== -1) {
      let line = this.#buffer.slice(0, nl)
      this.#buffer = this.#buffer.slice(nl + 1)
      if (line.endsWith('\r')) line = line.slice(0, -1)
      if (line === '') {
        if (this.#data.length > 0) out.push(this.#data.join('\n'))
        this.#data = []
      } else if (line.startsWith('data:')) {
        this.#data.push(line.slice(line[5] === ' ' ? 6 : 5))
      }
    }
    return out
  }
}
