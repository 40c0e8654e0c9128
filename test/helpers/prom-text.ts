// Reads the Prometheus text format (0.0.4) the way a scraper does: samples with their labels.

/** One sample line: the metric name (with its _bucket/_sum/_count suffix), its labels, its value. */
export interface Sample { name: string, labels: Record<string, string>, value: number }

const LINE = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)(?:\s+\d+)?$/
const LABEL = /([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g

/** Every sample of `text`; comments and blank lines skipped, a malformed line throws. */
export function parseSamples (text: string): Sample[] {
  const out: Sample[] = []
  for (const line of text.split('\n')) {
    if (line.trim() === '' || line.startsWith('#')) continue
    const m = LINE.exec(line)
    if (m === null) throw new Error(`not a sample line: ${line}`)
    const labels: Record<string, string> = {}
    for (const [, k, v] of (m[2] ?? '').matchAll(LABEL)) labels[k] = v.replace(/\\n/g, '\n').replace(/\\"/g, '"').replace(/\\\\/g, '\\')
    out.push({ name: m[1], labels, value: Number(m[3]) })
  }
  return out
}

/** `# TYPE` of each metric family. */
export function types (text: string): Record<string, string> {
  const out: Record<string, string> = {}
  for (const m of text.matchAll(/^# TYPE (\S+) (\S+)$/gm)) out[m[1]] = m[2]
  return out
}

/**
 * The sum of the samples named `name` whose labels include `labels` (0 when none matches): with
 * every label given, one series' value; with fewer, the total over the others.
 */
export function value (samples: Sample[], name: string, labels: Record<string, string> = {}): number {
  let sum = 0
  for (const s of samples) {
    if (s.name !== name) continue
    if (Object.entries(labels).every(([k, v]) => s.labels[k] === v)) sum += s.value
  }
  return sum
}
