import { readFileSync } from 'node:fs'
import t from 'tap'
import { ErrorCodes, MeshError, isMeshError, messageOf } from '../src/errors.ts'
import type { ErrorCode } from '../src/errors.ts'

const doc = readFileSync(new URL('../docs/errors.md', import.meta.url), 'utf8')
const codePattern = /MESH_ERR_[A-Z_]+/g
const known = Object.keys(ErrorCodes) as ErrorCode[]
const documented = new Set(doc.match(codePattern) ?? [])
/** Codes that open a row of the table (`| \`MESH_ERR_...\` | meaning | what to do |`). */
const rows = new Map<string, string[]>()
for (const line of doc.split('\n')) {
  const m = /^\|\s*`?(MESH_ERR_[A-Z_]+)`?\s*\|(.*)\|\s*$/.exec(line)
  if (m !== null) rows.set(m[1], m[2].split('|').map((c) => c.trim()))
}

t.test('every code in ErrorCodes is documented in docs/errors.md', async (t) => {
  const missing = known.filter((c) => !documented.has(c))
  t.same(missing, [], 'codes missing from docs/errors.md')
})

t.test('docs/errors.md lists no code that does not exist', async (t) => {
  const unknown = [...documented].filter((c) => !(c in ErrorCodes))
  t.same(unknown, [], 'codes in docs/errors.md that ErrorCodes lacks')
})

t.test('every code has a table row with a meaning and what to do', async (t) => {
  for (const code of known) {
    const cells = rows.get(code)
    t.ok(cells !== undefined, `${code} has a row`)
    t.equal(cells?.length, 2, `${code}: meaning and what to do`)
    t.ok(cells?.every((c) => c.length > 0), `${code}: no empty cell`)
  }
  t.equal(rows.size, known.length, 'one row per code')
})

t.test('codes are upper-case MESH_ERR_ names with a description', async (t) => {
  for (const code of known) {
    t.match(code, /^MESH_ERR_[A-Z]+(_[A-Z]+)*$/, code)
    t.ok(ErrorCodes[code].length > 0)
  }
})

t.test('MeshError carries its code, details and cause', async (t) => {
  const cause = new Error('root')
  const err = new MeshError('MESH_ERR_SYNC_FAILED', 'x', { cause, details: { peer: 'p' } })
  t.equal(err.code, 'MESH_ERR_SYNC_FAILED')
  t.equal(err.name, 'MeshError')
  t.same(err.details, { peer: 'p' })
  t.equal(err.cause, cause)
  t.ok(err instanceof Error)
  t.ok(isMeshError(err))
  t.ok(isMeshError(err, 'MESH_ERR_SYNC_FAILED'))
  t.notOk(isMeshError(err, 'MESH_ERR_ABORTED'))
  t.notOk(isMeshError(new Error('MESH_ERR_SYNC_FAILED')), 'a plain Error is not a MeshError')
  t.equal(new MeshError('MESH_ERR_ABORTED', 'y').cause, undefined)
})

t.test('messageOf gives a log line words for any failure, never "undefined"', async (t) => {
  t.equal(messageOf(new Error('refused')), 'refused')
  t.equal(messageOf(Object.assign(new Error(''), { code: 'ERR_UNEXPECTED_EOF' })), 'ERR_UNEXPECTED_EOF', 'no message: its code')
  t.equal(messageOf(new DOMException('', 'AbortError')), 'AbortError', 'no message, no code: its name')
  t.equal(messageOf({ message: undefined }), '[object Object]', 'an object with nothing to say')
  t.equal(messageOf('plain'), 'plain')
  t.equal(messageOf(undefined), 'undefined', 'what was thrown, when it was nothing')
})
