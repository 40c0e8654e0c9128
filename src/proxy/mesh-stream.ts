// A streaming call as an async iterator: the parts a provider emits, in order, then its final
// result. The buffer is bounded: a consumer that falls behind holds the transport back, and the
// provider's `ctx.emit` waits, rather than parts piling up in memory.
import type { CallOptions, ProviderInfo } from './mesh-tool.ts'

/** Parts a stream holds for its consumer before it stops reading the provider's answer. */
export const STREAM_BUFFER_PARTS = 16

/**
 * A call in progress whose partial results are read as they come:
 *
 * ```ts
 * const s = weather.stream({ city: 'Oslo' })
 * for await (const part of s) show(part)   // each part the provider emitted, in order
 * const forecast = await s.result          // then the final result
 * ```
 *
 * The call starts at once. The iterator yields the parts, then ends; a failure is thrown from it
 * as a `MeshError` (after the parts that came before it). Leaving the loop early (`break`,
 * `return`, a throw) aborts the call: the provider gets MCP `notifications/cancelled` and its
 * handler's signal aborts. At most `STREAM_BUFFER_PARTS` parts wait unread; past that the answer
 * is not read until the consumer catches up, so iterate the stream: a stream nobody reads stalls
 * its provider until the call's timeout (set `timeout` for long streams: it bounds the whole call).
 */
export interface MeshStream<R> extends AsyncIterableIterator<unknown> {
  /** The final result (as the dependency's callable returns it); rejects with the call's error. */
  readonly result: Promise<R>
  /** Who served the call, once the result has arrived. */
  readonly provider: ProviderInfo | undefined
}

type Invoke<R> = (args: Record<string, unknown> | undefined, options: CallOptions) => Promise<{ result: R, provider: ProviderInfo }>

/** Starts `invoke` with a part listener and returns the stream of its parts. */
export function meshStream<R> (invoke: Invoke<R>, args?: Record<string, unknown>, options: Omit<CallOptions, 'onPart'> = {}): MeshStream<R> {
  const stop = new AbortController()
  const signal = options.signal === undefined ? stop.signal : AbortSignal.any([options.signal, stop.signal])
  const buffer: unknown[] = []
  /** The producer, held back while the buffer is full. */
  let room: (() => void) | undefined
  /** The consumer, waiting for a part or the end. */
  let ready: (() => void) | undefined
  let settled: { ok: true, result: R, provider: ProviderInfo } | { ok: false, error: unknown } | undefined
  let closed = false
  const wake = (): void => { ready?.(); ready = undefined }
  const release = (): void => { room?.(); room = undefined }

  const onPart = (part: unknown): void | Promise<void> => {
    if (closed) return
    buffer.push(part)
    wake()
    if (buffer.length >= STREAM_BUFFER_PARTS) return new Promise((resolve) => { room = resolve })
  }
  const call = invoke(args, { ...options, signal, onPart }).then(
    (r) => { settled = { ok: true, ...r }; wake() },
    (error: unknown) => { settled = { ok: false, error }; wake() },
  )
  const result = call.then(() => {
    if (settled?.ok !== true) throw (settled as { error: unknown }).error
    return settled.result
  })
  result.catch(() => {}) // read through the iterator alone, a failure is not unhandled

  /** The consumer is done with the stream: stop the call if it still runs, and drop what is buffered. */
  const close = (): void => {
    if (closed) return
    closed = true
    buffer.length = 0
    if (settled === undefined) stop.abort(new DOMException('the stream was closed by its consumer', 'AbortError'))
    release()
  }

  const stream: MeshStream<R> = {
    result,
    get provider () { return settled?.ok === true ? settled.provider : undefined },
    async next (): Promise<IteratorResult<unknown>> {
      for (;;) {
        if (buffer.length > 0) {
          const value = buffer.shift()
          if (buffer.length < STREAM_BUFFER_PARTS) release()
          return { value, done: false }
        }
        if (closed) return { value: undefined, done: true }
        if (settled !== undefined) {
          closed = true
          if (!settled.ok) throw settled.error
          return { value: undefined, done: true }
        }
        await new Promise<void>((resolve) => {
          const before = ready // a second reader at once (not for await's way) waits alongside
          ready = before === undefined ? resolve : () => { before(); resolve() }
        })
      }
    },
    async return (): Promise<IteratorResult<unknown>> {
      close()
      return { value: undefined, done: true }
    },
    async throw (err?: unknown): Promise<IteratorResult<unknown>> {
      close()
      throw err
    },
    [Symbol.asyncIterator] () { return stream },
  }
  return stream
}
