import type { ServerResponse } from 'node:http'
import type { JSONRPCMessage } from '@modelcontextprotocol/sdk/types.js'
import type { Clock, TimerHandle } from '../clock.ts'

/** How long and how much an answer may wait for a client that does not read it. */
export interface ReaderLimits {
  /** Bytes a streamed answer may hold unread before the stream is dropped. */
  maxUnreadBytes: number
  /** A full write buffer that does not drain within this drops the answer. */
  slowReaderTimeoutMs: number
  clock: Clock
  /**
   * Called once per answer dropped for a slow reader, before the response is destroyed: it
   * counts the drop and abandons the exchange at once (a handler that keeps writing may not
   * yield to the event loop, where the response's 'close' would be seen).
   */
  onSlowReader: (exchange: Exchange) => void
}

/**
 * One HTTP POST in flight: the requests it carried and the response they are answered on.
 * Answers go out as one JSON body when they are all ready, unless something related to one of
 * them (a progress notification, a server-to-client request) must be sent first: then the
 * response switches to an SSE stream, as Streamable HTTP allows. A client that stops reading is
 * cut off (`ReaderLimits`): the response is destroyed, which abandons what it still waits for.
 */
export class Exchange {
  /** Internal request IDs still waiting for an answer. */
  readonly waiting = new Set<number>()
  /** True once the response is complete or abandoned: nothing more is written. */
  done = false
  readonly res: ServerResponse
  readonly #batch: boolean
  readonly #limits: ReaderLimits
  /** Answers as they complete (JSON-RPC matches them by ID), held until they all are ready. */
  #answers: JSONRPCMessage[] = []
  #sse = false
  #stall?: TimerHandle

  constructor (res: ServerResponse, batch: boolean, limits: ReaderLimits) {
    this.res = res
    this.#batch = batch
    this.#limits = limits
  }

  /** The answer to one of its requests; the response completes when none is left waiting. */
  answer (message: JSONRPCMessage): void {
    if (this.#sse) this.#write(message)
    else this.#answers.push(message)
    if (this.waiting.size === 0) this.finish()
  }

  /** A message tied to one of its requests that must go before the answer: streams the response. */
  stream (message: JSONRPCMessage): void {
    if (!this.#sse) {
      this.#sse = true
      this.res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache' })
      for (const a of this.#answers) this.#write(a)
      this.#answers = []
    }
    this.#write(message)
  }

  /**
   * Resolves once the response's write buffer has room again (or the response is gone): what a
   * partial result waits for, so a streaming handler goes at its caller's pace. A caller that
   * reads nothing is still cut off by `slowReaderTimeoutMs`, which ends the wait.
   */
  writable (): Promise<void> {
    const res = this.res
    if (!res.writableNeedDrain || res.destroyed) return Promise.resolve()
    return new Promise((resolve) => {
      const done = (): void => { res.off('drain', done).off('close', done); resolve() }
      res.once('drain', done).once('close', done)
    })
  }

  /** Completes the response: the SSE stream ends, or the JSON answers go out (202 when none). */
  finish (): void {
    this.done = true
    const res = this.res
    if (this.#sse) {
      res.end()
    } else if (this.#answers.length === 0) {
      res.writeHead(202).end() // every request of the POST was cancelled
      return
    } else {
      const body = JSON.stringify(this.#batch ? this.#answers : this.#answers[0])
      res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) })
      res.end(body)
    }
    if (res.writableNeedDrain) this.#watchStall()
  }

  #write (message: JSONRPCMessage): void {
    const res = this.res
    if (res.destroyed) return
    // Checked before the write: what stays in memory is the bound plus one message.
    if (res.writableLength > this.#limits.maxUnreadBytes) { this.#cutOff(); return }
    if (!res.write(`event: message\ndata: ${JSON.stringify(message)}\n\n`)) this.#watchStall()
  }

  /** The write buffer is full: the client must read some of it within the timeout. */
  #watchStall (): void {
    if (this.#stall !== undefined) return
    const { clock } = this.#limits
    const clear = (): void => {
      if (this.#stall === undefined) return
      clock.clearTimeout(this.#stall)
      this.#stall = undefined
      this.res.off('drain', clear).off('close', clear)
    }
    this.#stall = clock.setTimeout(() => { clear(); this.#cutOff() }, this.#limits.slowReaderTimeoutMs)
    this.res.once('drain', clear).once('close', clear)
  }

  /** Drops the response and abandons the requests still waiting (their handlers abort). */
  #cutOff (): void {
    if (this.res.destroyed) return
    this.#limits.onSlowReader(this)
    this.res.destroy()
  }
}
