// The logs of a real process (test/fixtures/log-process.ts): JSON lines on stderr and nothing on
// stdout, the level from MCP_MESH_LOG_LEVEL (or DEBUG=mesh:*), the component and agent fields, an
// Error's code and stack, the active span's IDs on the lines written inside it and on no others.
import t from 'tap'
import { spawn, spawnSync } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import { parseGossipOptions, parseLogLevel, parseMeshNodeOptions } from '../../src/config.ts'
import { collect } from '../helpers/collect.ts'
import { reapOnExit } from '../helpers/reap.ts'

const root = fileURLToPath(new URL('../..', import.meta.url))
const FIXTURE = 'test/fixtures/log-process.ts'

interface Line { level: string, component: string, msg: string, [field: string]: unknown }
interface Run { code: number | null, out: string, err: string, lines: Line[] }

async function run (env: Record<string, string>, args: string[] = []): Promise<Run> {
  const base = { ...process.env }
  delete base.DEBUG
  delete base.MCP_MESH_LOG_LEVEL
  const child = spawn(process.execPath, [FIXTURE, ...args], { cwd: root, env: { ...base, ...env }, stdio: ['ignore', 'pipe', 'pipe'] })
  reapOnExit(child)
  const r = await collect(child)
  // Every line must parse: a line that does not is a test failure, reported with the output.
  const lines = r.err.split('\n').filter((l) => l !== '').map((l) => JSON.parse(l) as Line)
  return { ...r, lines }
}

const byMsg = (r: Run, start: string): Line | undefined => r.lines.find((l) => l.msg.startsWith(start))

const [warn, all, byDefault, span, invalid, debugEnv] = await Promise.all([
  run({ MCP_MESH_LOG_LEVEL: 'warn' }),
  run({ MCP_MESH_LOG_LEVEL: 'TRACE' }),
  run({}),
  run({ MCP_MESH_LOG_LEVEL: 'info' }, ['span']),
  run({ MCP_MESH_LOG_LEVEL: 'loud' }),
  run({ DEBUG: 'mesh:admission' }),
])

t.test('MCP_MESH_LOG_LEVEL=warn: only warn and error lines, JSON on stderr, nothing on stdout', async (t) => {
  t.equal(warn.code, 0)
  t.equal(warn.out, '')
  t.same(warn.lines.map((l) => [l.level, l.component, l.msg]), [['warn', 'gossip', 'warn line'], ['error', 'gossip', 'sync failed: boom']])
  for (const l of warn.lines) {
    t.equal(l.pid, warn.lines[0].pid)
    t.type(l.time, 'string')
    t.notOk('trace_id' in l, 'no span, no trace fields')
  }
})

t.test('trace (any case): every level, printf formatting, a component per logger, the agent a child binds', async (t) => {
  t.equal(all.out, '')
  t.same(all.lines.map((l) => l.level), ['trace', 'debug', 'info', 'warn', 'error', 'debug', 'info'])
  t.equal(byMsg(all, 'debug line')?.msg, 'debug line x')
  t.equal(byMsg(all, 'info line')?.msg, 'info line 3')
  t.equal(byMsg(all, 'admission debug')?.component, 'admission')
  t.match(byMsg(all, 'bound line'), { component: 'gossip', agent: 'weather' })
  t.notOk('agent' in byMsg(all, 'info line')!, 'only the child carries the agent')
})

t.test('an Error passed to log.error is structured: type, code, message, stack, details', async (t) => {
  const line = byMsg(all, 'sync failed')!
  t.equal(line.msg, 'sync failed: boom', 'the Error stands as its message in the text')
  t.match(line.err, { type: 'MeshError', code: 'MESH_ERR_SYNC_FAILED', message: 'boom', details: { peer: 'p1' } })
  t.match((line.err as { stack: string }).stack, /^MeshError: boom\n\s+at /)
})

t.test('default level: info', async (t) => {
  t.same(byDefault.lines.map((l) => l.level), ['info', 'warn', 'error', 'info'])
})

t.test('lines written while a span is active carry its trace and span IDs; lines outside carry none', async (t) => {
  t.equal(span.code, 0)
  t.equal(span.out, '')
  const inside = span.lines.filter((l) => l.msg.startsWith('inside'))
  t.equal(inside.length, 2, 'before and after an await inside the span')
  for (const l of inside) {
    const [, traceId, spanId] = l.msg.split(' ').slice(-3)
    t.match(traceId, /^[0-9a-f]{32}$/)
    t.match(spanId, /^[0-9a-f]{16}$/)
    t.equal(l.trace_id, traceId)
    t.equal(l.span_id, spanId)
    t.equal(l.trace_flags, '01', 'sampled, as W3C traceflags')
  }
  const outside = span.lines.filter((l) => !l.msg.startsWith('inside'))
  t.same(outside.map((l) => l.msg), ['info line 3', 'warn line', 'sync failed: boom', 'bound line', 'before the span', 'after the span'])
  for (const l of outside) t.notOk('trace_id' in l || 'span_id' in l, `no trace fields on "${l.msg}"`)
})

t.test('an invalid MCP_MESH_LOG_LEVEL: the logger warns, naming the variable, and logs at info', async (t) => {
  t.equal(invalid.code, 0, 'importing the library does not fail')
  t.match(invalid.lines[0], { level: 'warn', component: 'log', msg: /MCP_MESH_LOG_LEVEL "loud"/ })
  t.same(invalid.lines.slice(1).map((l) => l.level), ['info', 'warn', 'error', 'info'])
})

t.test('an invalid MCP_MESH_LOG_LEVEL fails the option parsers with MESH_ERR_CONFIG_INVALID naming it', async (t) => {
  const env = { MCP_MESH_LOG_LEVEL: 'loud' }
  for (const parse of [() => parseLogLevel(env), () => parseGossipOptions({ name: 'a' }, env), () => parseMeshNodeOptions({ name: 'a' }, env)]) {
    t.throws(parse, { code: 'MESH_ERR_CONFIG_INVALID', details: { fields: ['MCP_MESH_LOG_LEVEL'] } })
  }
  t.equal(parseLogLevel({}), 'info')
  t.equal(parseLogLevel({ MCP_MESH_LOG_LEVEL: ' Silent ' }), 'silent')
})

t.test('DEBUG=mesh:admission lowers that component to debug, and no other', async (t) => {
  t.same(debugEnv.lines.map((l) => [l.level, l.component]), [['info', 'gossip'], ['warn', 'gossip'], ['error', 'gossip'], ['debug', 'admission'], ['info', 'gossip']])
})

// A terminal: util-linux's `script` gives the process a pty. Skipped where it is missing.
const hasScript = spawnSync('script', ['--version']).status === 0
t.test('on a terminal, lines are human-readable, not JSON', { skip: hasScript ? false : 'script (util-linux) is not installed' }, async (t) => {
  const child = spawn('script', ['-qec', `${JSON.stringify(process.execPath)} ${FIXTURE}`, '/dev/null'], { cwd: root, env: { ...process.env, MCP_MESH_LOG_LEVEL: 'info', DEBUG: '' }, stdio: ['ignore', 'pipe', 'pipe'] })
  reapOnExit(child)
  const r = await collect(child)
  t.equal(r.code, 0)
  // eslint-disable-next-line no-control-regex
  const text = r.out.replace(/\u001b\[[0-9;]*m/g, '')
  t.match(text, /INFO.*\[gossip\] info line 3/)
  t.match(text, /weather \[gossip\] bound line/)
  t.match(text, /ERROR.*\[gossip\] sync failed: boom[\s\S]*"code": "MESH_ERR_SYNC_FAILED"/)
  t.notOk(text.split('\n').some((l) => l.trim().startsWith('{"level"')), 'no JSON lines')
})
