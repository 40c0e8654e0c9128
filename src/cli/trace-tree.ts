// The tree `meshctl trace` prints from the spans the agents kept: each call served as
// `tool (agent) [ms] ✓`, each call it made through a dependency as `dependency (provider) [ms]`,
// with the provider's own calls beneath it. A call that needed more than one attempt, or failed,
// lists its attempts. Pure: spans in, lines out.
import type { SpanRecord } from '../telemetry/span-ring.ts'
import type { Painter } from './args.ts'
import { escapeControls } from './print.ts'

const SERVER = 1
const ERROR = 2

/** One line of the tree before drawing: text, and the lines beneath it. */
interface Node { text: string, children: Node[] }

/** Builds the lines of a trace from its spans, from every agent that answered. */
export function traceTree (spans: SpanRecord[], p: Painter): string[] {
  const byId = new Map(spans.map((s) => [s.spanId, s]))
  const children = new Map<string, SpanRecord[]>()
  const roots: SpanRecord[] = []
  for (const s of [...spans].sort((a, b) => a.start - b.start)) {
    if (s.parentSpanId === undefined || !byId.has(s.parentSpanId)) { roots.push(s); continue }
    const list = children.get(s.parentSpanId)
    if (list === undefined) children.set(s.parentSpanId, [s])
    else list.push(s)
  }
  const kids = (s: SpanRecord): SpanRecord[] => children.get(s.spanId) ?? []
  const ms = (s: SpanRecord): string => `[${s.ms < 10 ? s.ms.toFixed(1) : Math.round(s.ms)}ms]`
  const status = (s: SpanRecord): string => s.status === ERROR ? p.red(`✗ ${String(s.attributes['error.type'] ?? 'ERROR')}`) : p.green('✓')
  const str = (v: unknown): string => escapeControls(String(v ?? '?'))

  /** What a span of our own kinds becomes; spans of other instrumentation keep their name. */
  const node = (s: SpanRecord): Node => {
    if (s.kind === SERVER) {
      const tool = str(s.attributes['gen_ai.tool.name'] ?? s.name)
      return { text: `${tool} (${str(s.agent)}) ${ms(s)} ${status(s)}`, children: kids(s).map(node) }
    }
    if (s.attributes['mesh.dependency'] !== undefined) return callNode(s)
    return { text: `${str(s.name)} (${str(s.agent)}) ${ms(s)} ${status(s)}`, children: kids(s).map(node) }
  }

  /** A call through a dependency: its provider's own calls beneath, or each attempt when there were several. */
  const callNode = (s: SpanRecord): Node => {
    const attempts = kids(s)
    const n = Number(s.attributes['mesh.attempts'] ?? attempts.length)
    const after = n > 1 ? ` after ${n} attempts` : ''
    const text = `${str(s.attributes['mesh.dependency'])} (${str(s.attributes['mesh.peer.agent'] ?? 'no provider')}) ${ms(s)} ${status(s)}${after}`
    const served = (a: SpanRecord): Node[] => kids(a).flatMap((k) => k.kind === SERVER ? kids(k).map(node) : [node(k)])
    if (attempts.length === 1 && s.status !== ERROR) return { text, children: served(attempts[0]) }
    return {
      text,
      children: attempts.map((a) => ({
        text: `attempt ${str(a.attributes['mesh.attempt'])} → ${str(a.attributes['mesh.peer.agent'])} ${ms(a)} ${status(a)}`,
        children: served(a),
      })),
    }
  }

  const lines: string[] = []
  const draw = (n: Node, prefix: string, last: boolean): void => {
    lines.push(`${prefix}${last ? '└─ ' : '├─ '}${n.text}`)
    n.children.forEach((c, i) => draw(c, prefix + (last ? '   ' : '│  '), i === n.children.length - 1))
  }
  roots.forEach((r, i) => draw(node(r), '', i === roots.length - 1))
  return lines
}
