// The tool registry: one call path (validation, handler, output check) for the endpoint and for
// in-process calls, and its failures as codes in _meta.
import t from 'tap'
import { z } from 'zod'
import { createToolRegistry } from '../../src/server/tools.ts'
import { MESH_ERROR_META_KEY } from '../../src/errors.ts'
import type { CallExtra } from '../../src/server/exchange-transport.ts'

const registry = createToolRegistry({ agent: 'unit' })
registry.register('double', { input: { n: z.number() }, output: { twice: z.number() } }, (args) => ({ twice: (args as { n: number }).n * 2 }))
registry.register('liar', { output: { twice: z.number() } }, () => ({ twice: 'two' }))
registry.register('silent', { output: { twice: z.number() } }, () => 'text only')
// Async refinements: zod refuses them in a synchronous parse, so these take the async one.
const positive = z.number().refine(async (n) => await Promise.resolve(n > 0), 'must be positive')
registry.register('halve', { input: { n: positive }, output: { half: positive } }, (args) => ({ half: (args as { n: number }).n / 2 - 1 }))
registry.register('thrower', { description: 'Throws' }, () => { throw new Error('boom') })

const extra = (): CallExtra => ({
  signal: new AbortController().signal,
  requestId: 1,
  requestInfo: { headers: {} },
  sendNotification: async () => {},
  sendRequest: async () => { throw new Error('no caller') },
} as unknown as CallExtra)
const code = (r: { _meta?: Record<string, unknown> }): unknown => (r._meta?.[MESH_ERROR_META_KEY] as { code?: string } | undefined)?.code
const signal = new AbortController().signal

t.test('in-process and endpoint calls give the same results, failures included', async (t) => {
  for (const [name, args, expected] of [
    ['double', { n: 2 }, undefined],
    ['double', { n: 'x' }, 'MESH_ERR_CALL_INVALID_ARGS'],
    ['liar', {}, 'MESH_ERR_CALL_INVALID_OUTPUT'],
    ['silent', {}, 'MESH_ERR_CALL_INVALID_OUTPUT'],
    ['thrower', {}, 'MESH_ERR_CALL_TOOL_ERROR'],
    ['halve', { n: 4 }, undefined],
    ['halve', { n: -4 }, 'MESH_ERR_CALL_INVALID_ARGS'],
    ['halve', { n: 2 }, 'MESH_ERR_CALL_INVALID_OUTPUT'],
  ] as const) {
    const local = await registry.callLocal(name, args, signal)
    const remote = await registry.fastCall(name, args, extra())
    t.same(local, remote, `${name}: the same result both ways`)
    t.equal(code(local), expected, `${name}: ${expected ?? 'no error'}`)
  }
  t.same((await registry.callLocal('double', { n: 2 }, signal)).structuredContent, { twice: 4 })
  t.same((await registry.fastCall('halve', { n: 4 }, extra())!).structuredContent, { half: 1 }, 'input and output with async refinements are checked')
  t.equal(code(await registry.fastCall('missing', {}, extra())!), 'MESH_ERR_CALL_UNKNOWN_TOOL')
})

t.test('validation issues travel as data', async (t) => {
  const r = await registry.callLocal('double', { n: 'x' }, signal)
  t.match(r._meta?.[MESH_ERROR_META_KEY], { code: 'MESH_ERR_CALL_INVALID_ARGS', issues: [{ path: ['n'], code: 'invalid_type' }] })
  t.equal(r.isError, true)
  t.equal(r.content[0].type, 'text', 'the human text stays in content')
})

t.test('a tool without a description gets a default that names it', async (t) => {
  const adverts = registry.adverts()
  t.equal(adverts.find((a) => a.name === 'thrower')?.description, 'Throws', 'a declared description is kept')
  const double = adverts.find((a) => a.name === 'double')?.description ?? ''
  t.ok(double.includes('double') && double.includes('unit'), 'the default names the tool and the agent')
  t.throws(() => registry.register('double', {}, () => 1), { code: 'MESH_ERR_TOOL_INVALID' }, 'a name is taken once')
})
