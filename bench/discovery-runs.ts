// Runs bench/discovery.ts several times in a row, each in its own process, and tabulates every run:
// healthy agents wrongly declared dead (over the whole run: start-up burst, idle, CPU saturation,
// the rounds), kill -9 and SIGSTOP detection, idle and whole-run traffic. A rare failure shows only
// across runs: report the worst run, not the best.
// Usage: node bench/discovery-runs.ts [--runs 10] [--agents 20] [--rounds 3] [--idle 5] [--burn 15]
import { spawn } from 'node:child_process'
import { readFile, writeFile, mkdir } from 'node:fs/promises'
import { fileURLToPath } from 'node:url'
import { parseArgs } from 'node:util'

const { values } = parseArgs({ options: { runs: { type: 'string', default: '10' }, agents: { type: 'string', default: '20' }, rounds: { type: 'string', default: '3' }, idle: { type: 'string', default: '5' }, burn: { type: 'string', default: '15' } } })
const RUNS = Number(values.runs)
const script = fileURLToPath(new URL('./discovery.ts', import.meta.url))

interface Summary { p50: number, max: number }
interface Run {
  falseDeaths: number
  falseDeathEvents: number
  falseDeathsByPhase: Record<string, number>
  falseSuspicions: number
  falseSuspicionsByPhase: Record<string, number>
  killDetectMs: Summary
  stopDetectMs: Summary
  stopMisses: number
  joinMs: Summary
  idleBytesPerNodePerSecond: { meshPayload: number, syscallReadWrite: number }
  wholeRunBytesPerNodePerSecond: { seconds: number, meshPayload: number, syscallReadWrite: number }
}

const runs: Run[] = []
for (let i = 1; i <= RUNS; i++) {
  const out = `results/discovery-run-${i}.json`
  const code = await new Promise<number | null>((resolve) => {
    const child = spawn(process.execPath, [script, '--agents', values.agents, '--rounds', values.rounds, '--idle', values.idle, '--burn', values.burn, '--out', out], { stdio: ['ignore', 'ignore', 'inherit'] })
    child.once('exit', resolve)
  })
  if (code !== 0) throw new Error(`run ${i} exited with ${code}`)
  const r = JSON.parse(await readFile(new URL(out, import.meta.url), 'utf8')) as Run
  runs.push(r)
  console.log(`run ${i}/${RUNS}: ${r.falseDeaths} healthy agents declared dead (${JSON.stringify(r.falseDeathsByPhase)}), ${r.falseSuspicions} wrongful suspicions, kill -9 ${r.killDetectMs.max} ms worst, SIGSTOP ${r.stopDetectMs.max} ms worst`)
}

const col = (f: (r: Run) => number): number[] => runs.map(f)
const stats = (xs: number[]): string => `${Math.min(...xs)} to ${Math.max(...xs)}`
console.log(`\n| run | healthy declared dead | wrongful suspicions (start-up, idle, saturation, rounds) | kill -9 p50 / worst ms | SIGSTOP p50 / worst ms | idle B/s per node (payload / process) | whole run B/s per node |`)
console.log('|---|---|---|---|---|---|---|')
runs.forEach((r, i) => {
  const s = r.falseSuspicionsByPhase
  console.log(`| ${i + 1} | ${r.falseDeaths} | ${r.falseSuspicions} (${s['start-up'] ?? 0}, ${s.idle ?? 0}, ${s['cpu saturation'] ?? 0}, ${s.rounds ?? 0}) | ${r.killDetectMs.p50} / ${r.killDetectMs.max} | ${r.stopDetectMs.p50} / ${r.stopDetectMs.max}${r.stopMisses > 0 ? ` (${r.stopMisses} missed)` : ''} | ${r.idleBytesPerNodePerSecond.meshPayload} / ${r.idleBytesPerNodePerSecond.syscallReadWrite} | ${r.wholeRunBytesPerNodePerSecond.meshPayload} / ${r.wholeRunBytesPerNodePerSecond.syscallReadWrite} |`)
})
console.log(`\nhealthy agents declared dead: ${col((r) => r.falseDeaths).reduce((a, b) => a + b, 0)} in ${RUNS} runs; runs with any: ${runs.filter((r) => r.falseDeaths > 0).length}`)
console.log(`kill -9 worst per run: ${stats(col((r) => r.killDetectMs.max))} ms; SIGSTOP worst per run: ${stats(col((r) => r.stopDetectMs.max))} ms`)
console.log(`idle mesh payload per node: ${stats(col((r) => r.idleBytesPerNodePerSecond.meshPayload))} B/s; whole run: ${stats(col((r) => r.wholeRunBytesPerNodePerSecond.meshPayload))} B/s`)
await mkdir(new URL('./results/', import.meta.url), { recursive: true })
await writeFile(new URL('./results/discovery-runs.json', import.meta.url), JSON.stringify({ date: new Date().toISOString(), options: values, runs }, null, 2))
