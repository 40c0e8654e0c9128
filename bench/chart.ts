// Draws docs/benchmarks.svg from bench/results/sim.json (the real stack in one process) and
// bench/results/model.json (the model simulation, a CPU per node, on LAN links and on the WAN
// profile): new-capability convergence and bytes per node against N (log scale), as two panels.
// Plain SVG, no dependency.
// Usage: node bench/chart.ts
import { readFile, writeFile, mkdir } from 'node:fs/promises'

interface Row { n: number, spread99Ms: number, spread100Ms: number, detectMs: number, idleBytesPerNodePerS: { probe: number, sync: number, gossip: number } }
interface ModelRow { n: number, spread99Ms: number, spread100Ms: number, idle: { wire: number, payload: number }, churn: { wire: number, payload: number } }
interface WanRow { n: number, timing: string, spread100Ms?: number, idle: { wire: number, payload: number } }
const readJson = async (name: string): Promise<any> => {
  const text = await readFile(new URL(`./results/${name}`, import.meta.url), 'utf8').catch(() => undefined)
  return text === undefined ? undefined : JSON.parse(text)
}
const rows: Row[] = (await readJson('sim.json'))?.rows ?? []
const modelJson = await readJson('model.json')
const model: ModelRow[] = modelJson?.rows ?? []
// The WAN profile's runs (the shipped timing unless bench/model.ts was given --wan-timing).
const wan: WanRow[] = (modelJson?.wan?.rows ?? []).filter((r: WanRow) => r.spread100Ms !== undefined)
type Series = { name: string, colour: string, points: Array<[number, number]> }
const harnessIdle = (r: Row): number => r.idleBytesPerNodePerS.probe + r.idleBytesPerNodePerS.sync + r.idleBytesPerNodePerS.gossip

const W = 420
const H = 260
const M = { l: 60, r: 20, t: 30, b: 45 }
const esc = (s: string): string => s.replace(/&/g, '&amp;').replace(/</g, '&lt;')

function panel (x0: number, title: string, yLabel: string, series: Array<{ name: string, colour: string, points: Array<[number, number]> }>): string {
  const xs = series.flatMap((s) => s.points.map((p) => p[0]))
  const ys = series.flatMap((s) => s.points.map((p) => p[1]))
  const lx = (v: number): number => Math.log10(v)
  const [xmin, xmax] = [lx(Math.min(...xs)), lx(Math.max(...xs))]
  // Log scale on y too: the curves span three orders of magnitude.
  const [ymin, ymax] = [Math.floor(lx(Math.max(1, Math.min(...ys)))), Math.ceil(lx(Math.max(...ys)))]
  const px = (v: number): number => x0 + M.l + ((lx(v) - xmin) / Math.max(1e-9, xmax - xmin)) * (W - M.l - M.r)
  const py = (v: number): number => M.t + (1 - (lx(Math.max(1, v)) - ymin) / Math.max(1e-9, ymax - ymin)) * (H - M.t - M.b)
  const out: string[] = [`<text x="${x0 + W / 2}" y="18" text-anchor="middle" font-weight="bold">${esc(title)}</text>`]
  for (let e = ymin; e <= ymax; e++) {
    const v = 10 ** e
    out.push(`<line x1="${x0 + M.l}" x2="${x0 + W - M.r}" y1="${py(v)}" y2="${py(v)}" stroke="#ddd"/>`, `<text x="${x0 + M.l - 6}" y="${py(v) + 4}" text-anchor="end">${Math.round(v)}</text>`)
  }
  for (const n of [...new Set(xs)]) out.push(`<text x="${px(n)}" y="${H - M.b + 16}" text-anchor="middle">${n}</text>`)
  out.push(`<text x="${x0 + W / 2}" y="${H - 8}" text-anchor="middle">nodes (log scale)</text>`)
  out.push(`<text x="${x0 + 14}" y="${H / 2}" text-anchor="middle" transform="rotate(-90 ${x0 + 14} ${H / 2})">${esc(yLabel)}</text>`)
  series.forEach((s, i) => {
    out.push(`<polyline fill="none" stroke="${s.colour}" stroke-width="2" points="${s.points.map(([x, y]) => `${px(x)},${py(y)}`).join(' ')}"/>`)
    for (const [x, y] of s.points) out.push(`<circle cx="${px(x)}" cy="${py(y)}" r="3" fill="${s.colour}"/>`)
    out.push(`<text x="${x0 + M.l + 8}" y="${M.t + 14 + i * 14}" fill="${s.colour}">${esc(s.name)}</text>`)
  })
  return out.join('\n')
}

const svg = `<svg xmlns="http://www.w3.org/2000/svg" width="${2 * W}" height="${H}" font-family="sans-serif" font-size="11">
<rect width="100%" height="100%" fill="white"/>
${panel(0, 'New capability reaches every replica', 'ms (log scale)', ([
  { name: 'real stack, one process: 100 %', colour: '#c0392b', points: rows.map((r) => [r.n, r.spread100Ms]) },
  { name: 'real stack, one process: 99 %', colour: '#e67e22', points: rows.map((r) => [r.n, r.spread99Ms]) },
  { name: 'model, a CPU per node: 100 %', colour: '#2980b9', points: model.map((r) => [r.n, r.spread100Ms]) },
  { name: 'model, WAN: 100 %', colour: '#27ae60', points: wan.map((r) => [r.n, r.spread100Ms!]) },
] satisfies Series[] as Series[]).filter((s) => s.points.length > 0))}
${panel(W, 'Mesh traffic per node, each way', 'bytes/s (log scale)', ([
  { name: 'real stack, idle: payload', colour: '#2c3e50', points: rows.map((r) => [r.n, harnessIdle(r)]) },
  { name: 'model, idle: payload', colour: '#27ae60', points: model.map((r) => [r.n, r.idle.payload]) },
  { name: 'model, idle: wire', colour: '#16a085', points: model.map((r) => [r.n, r.idle.wire]) },
  { name: 'model, churn 2 events/s: wire', colour: '#8e44ad', points: model.map((r) => [r.n, r.churn.wire]) },
] satisfies Series[] as Series[]).filter((s) => s.points.length > 0))}
</svg>
`
await mkdir(new URL('../docs/', import.meta.url), { recursive: true })
await writeFile(new URL('../docs/benchmarks.svg', import.meta.url), svg)
console.log('wrote docs/benchmarks.svg')
