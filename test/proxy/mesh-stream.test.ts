// The stream of a streaming call, driven by a fake call: the order of parts and the result, the
// bounded buffer (the producer is held back, not the memory), the consumer leaving early (the
// call's signal aborts), and failures thrown from the iterator after the parts before them.
import t from 'tap'
import { MeshError } from '../../src/errors.ts'
import { STREAM_BUFFER_PARTS, meshStream } from '../../src/proxy/mesh-stream.ts'
import type { CallOptions, ProviderInfo } from '../../src/proxy/mesh-tool.ts'

const provider: ProviderInfo = { agent: 'p', peerId: 'peer-p', tool: 'count', local: false }

/** A call whose parts and outcome the test drives by hand. */
function fakeCall (): {
  invoke: (args: Record<string, unknown> | undefined, o: CallOptions) => Promise<{ result: unknown, provider: ProviderInfo }>
  options: () => CallOptions
  finish: (result: unknown) => void
  fail: (err: unknown) => void
} {
  let options: CallOptions | undefined
  let finish!: (result: unknown) => void
  let fail!: (err: unknown) => void
  const done = new Promise<{ result: unknown, provider: ProviderInfo }>((resolve, reject) => {
    finish = (result) => { resolve({ result, provider }) }
    fail = reject
  })
  return {
    invoke: async (_args, o) => {
      options = o
      o.signal?.addEventListener('abort', () => { fail(new MeshError('MESH_ERR_ABORTED', 'aborted', { cause: o.signal?.reason })) }, { once: true })
      return await done
    },
    options: () => options!,
    finish: (r) => { finish(r) },
    fail: (e) => { fail(e) },
  }
}

t.test('parts in order, then the end, then the result and its provider', async (t) => {
  const call = fakeCall()
  const s = meshStream(call.invoke, { n: 3 })
  for (let i = 0; i < 3; i++) await call.options().onPart!({ i })
  call.finish({ total: 3 })
  const parts: unknown[] = []
  for await (const p of s) parts.push(p)
  t.same(parts, [{ i: 0 }, { i: 1 }, { i: 2 }])
  t.same(await s.result, { total: 3 })
  t.equal(s.provider?.agent, 'p')
})

t.test('the buffer is bounded: a full buffer holds the producer until the consumer reads', async (t) => {
  const call = fakeCall()
  const s = meshStream(call.invoke)
  const onPart = call.options().onPart!
  for (let i = 0; i < STREAM_BUFFER_PARTS - 1; i++) t.equal(onPart(i), undefined, 'room left: the producer goes on')
  const held = onPart(STREAM_BUFFER_PARTS - 1)
  t.type(held, Promise, 'the last slot holds the producer back')
  let released = false
  void (held as Promise<void>).then(() => { released = true })
  await Promise.resolve()
  t.notOk(released, 'still held while nothing is read')
  t.same(await s.next(), { value: 0, done: false })
  await held
  t.ok(released, 'released by a read')
  call.finish('ok')
  let n = 1
  for await (const p of s) t.equal(p, n++)
  t.equal(n, STREAM_BUFFER_PARTS)
})

t.test('leaving the loop aborts the call and drops what is buffered', async (t) => {
  const call = fakeCall()
  const s = meshStream(call.invoke)
  await call.options().onPart!('a')
  await call.options().onPart!('b')
  for await (const p of s) {
    t.equal(p, 'a')
    break
  }
  t.ok(call.options().signal?.aborted, 'the call\'s signal aborted')
  t.equal((call.options().signal?.reason as DOMException).name, 'AbortError')
  await t.rejects(s.result, { code: 'MESH_ERR_ABORTED' })
  t.same(await s.next(), { value: undefined, done: true }, 'a closed stream stays ended')
  t.equal(call.options().onPart!('late'), undefined, 'a late part is dropped')
})

t.test('the caller\'s own signal still aborts the call', async (t) => {
  const call = fakeCall()
  const mine = new AbortController()
  const s = meshStream(call.invoke, {}, { signal: mine.signal })
  mine.abort()
  await t.rejects(s.next(), { code: 'MESH_ERR_ABORTED' })
})

t.test('a failure is thrown after the parts before it; the result rejects with it, unhandled or not', async (t) => {
  const call = fakeCall()
  const s = meshStream(call.invoke)
  await call.options().onPart!(1)
  await call.options().onPart!(2)
  call.fail(new MeshError('MESH_ERR_CALL_STREAM_BROKEN', 'broke', { details: { partsReceived: 2 } }))
  const parts: unknown[] = []
  await t.rejects((async () => { for await (const p of s) parts.push(p) })(), { code: 'MESH_ERR_CALL_STREAM_BROKEN' })
  t.same(parts, [1, 2])
  await t.rejects(s.result, { code: 'MESH_ERR_CALL_STREAM_BROKEN' })
  // A stream read through its iterator alone: its rejected result must not be an unhandled rejection.
  const other = fakeCall()
  const s2 = meshStream(other.invoke)
  other.fail(new MeshError('MESH_ERR_CALL_FAILED', 'x'))
  await t.rejects(s2.next(), { code: 'MESH_ERR_CALL_FAILED' })
})
