// The heap trim (src/heap-trim.ts): when memory saver mode goes on and off, on a fake process; and
// on a real one, that V8 runs a memory-reducing GC and the trim ends with it.
import t from 'tap'
import { spawn } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import { ManualClock } from '../../src/clock.ts'
import { HEAP_TRIM_MIN_V8, resetHeapTrimForTests, trimHeapWhenIdle } from '../../src/heap-trim.ts'
import type { HeapTrimSeam } from '../../src/heap-trim.ts'

interface Fake { seam: HeapTrimSeam, clock: ManualClock, flags: string[], load: number[], gc: () => void, watching: () => boolean }
function fake (load: number[], hostFlags: string[] = [], v8Major = HEAP_TRIM_MIN_V8): Fake {
  const clock = new ManualClock()
  const flags: string[] = []
  let onGc: (() => void) | undefined
  const f: Fake = {
    clock,
    flags,
    load,
    gc: () => { onGc?.() },
    watching: () => onGc !== undefined,
    seam: {
      clock,
      setFlags: (s) => { flags.push(s) },
      utilization: () => load.length > 1 ? load.shift()! : load[0],
      onMajorGc: (fn) => { onGc = fn; return () => { onGc = undefined } },
      hostFlags,
      v8Major,
    },
  }
  return f
}

t.beforeEach(() => { resetHeapTrimForTests() })

t.test('idle: memory saver mode goes on, and off after the next full GC', async (t) => {
  const f = fake([0, 0.01])
  const done = trimHeapWhenIdle({}, f.seam)
  f.clock.advance(1_999)
  t.same(f.flags, [], 'nothing before the first check')
  f.clock.advance(1)
  t.same(f.flags, ['--memory-saver-mode'], 'on once the loop is idle')
  t.ok(f.watching(), 'watching for the GC')
  f.gc()
  t.equal(await done, 'gc')
  t.same(f.flags, ['--memory-saver-mode', '--no-memory-saver-mode'], 'off after it')
  t.notOk(f.watching(), 'stopped watching')
  t.equal(f.clock.pending, 0, 'no timer left')
})

t.test('a busy loop is waited for; no GC in the window switches it off anyway', async (t) => {
  const f = fake([0, 0.5, 0.3, 0.02])
  const done = trimHeapWhenIdle({}, f.seam)
  f.clock.advance(4_000)
  t.same(f.flags, [], 'busy twice: still off')
  f.clock.advance(2_000)
  t.same(f.flags, ['--memory-saver-mode'])
  f.clock.advance(20_000)
  t.equal(await done, 'window')
  t.same(f.flags, ['--memory-saver-mode', '--no-memory-saver-mode'])
  t.equal(f.clock.pending, 0)
})

t.test('never idle: it gives up without touching a flag', async (t) => {
  const f = fake([0.9])
  const done = trimHeapWhenIdle({}, f.seam)
  f.clock.advance(11 * 60_000)
  t.equal(await done, 'busy')
  t.same(f.flags, [])
  t.equal(f.clock.pending, 0)
})

t.test("the host's own memory flags are left alone", async (t) => {
  for (const flag of ['--memory-saver-mode', '--no-memory_saver_mode', '--optimize-for-size']) {
    resetHeapTrimForTests()
    const f = fake([0], ['--enable-source-maps', flag])
    t.equal(await trimHeapWhenIdle({}, f.seam), 'host', flag)
    t.same(f.flags, [])
  }
})

t.test('abort: switched off at once; a later call may trim again', async (t) => {
  const f = fake([0])
  const ac = new AbortController()
  const done = trimHeapWhenIdle({ signal: ac.signal }, f.seam)
  f.clock.advance(2_000)
  ac.abort()
  t.equal(await done, 'stopped')
  t.same(f.flags, ['--memory-saver-mode', '--no-memory-saver-mode'])
  t.equal(f.clock.pending, 0)
  const g = fake([0])
  const again = trimHeapWhenIdle({}, g.seam)
  g.clock.advance(2_000)
  g.gc()
  t.equal(await again, 'gc', 'the next call ran')
  t.equal(await trimHeapWhenIdle({}, fake([0]).seam), 'stopped', 'once per process after that')
  t.equal(await trimHeapWhenIdle({ signal: AbortSignal.abort() }, fake([0]).seam), 'stopped')
})

t.test('before V8 13 (Node 22) nothing is set: the flag brought no reducing GC there', async (t) => {
  const f = fake([0], [], HEAP_TRIM_MIN_V8 - 1)
  t.equal(await trimHeapWhenIdle({}, f.seam), 'unsupported')
  t.same(f.flags, [])
  t.equal(f.clock.pending, 0)
})

const V8_MAJOR = Number(process.versions.v8.split('.')[0])
t.test('a real process: V8 runs a memory-reducing GC and the trim ends with it (Node 24), or the trim does nothing (Node 22)', async (t) => {
  const trim = fileURLToPath(new URL('../../src/heap-trim.ts', import.meta.url))
  // Old-generation garbage first (a full GC starts V8's memory reducer), then idle with a little
  // allocation, as a joined agent is.
  const script = `
    import { trimHeapWhenIdle } from ${JSON.stringify(trim)}
    let keep = []; for (let i = 0; i < 40; i++) { keep.push(new Array(100_000).fill(i)); if (keep.length > 10) keep.shift() }
    keep = []
    const tick = setInterval(() => { globalThis.junk = new Array(2_000).fill(Math.random()) }, 5)
    console.log('outcome', await trimHeapWhenIdle())
    clearInterval(tick)`
  const child = spawn(process.execPath, ['--trace-gc', '--input-type=module', '-e', script], { stdio: ['ignore', 'pipe', 'inherit'] })
  let out = ''
  child.stdout.on('data', (d: Buffer) => { out += d.toString() })
  await new Promise((resolve) => child.once('exit', resolve))
  if (V8_MAJOR < HEAP_TRIM_MIN_V8) {
    t.match(out, /outcome unsupported/, 'left to V8')
    return
  }
  t.match(out, /outcome gc/, 'ended by the GC')
  t.match(out, /Mark-Compact \(reduce\)/, 'a memory-reducing full GC ran')
})
