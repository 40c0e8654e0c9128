// Printing what came from the mesh. Names, tags, versions, endpoints and tool results are written
// by other members, so a hostile one could put terminal escapes in them (colour, cursor moves,
// window titles, fake lines). Every command's human output passes mesh strings through here.

// C0 controls (newline and tab included), DEL, C1 controls (0x9b is CSI on its own), the line and
// paragraph separators, and the bidirectional overrides that reorder what a terminal shows.
const UNSAFE = /[\\\u0000-\u001f\u007f-\u009f\u2028\u2029\u200e\u200f\u202a-\u202e\u2066-\u2069]/gu
// Multi-line text (a tool's result) keeps its newlines and tabs.
const UNSAFE_KEEP_LINES = /[\\\u0000-\u0008\u000b-\u001f\u007f-\u009f\u2028\u2029\u200e\u200f\u202a-\u202e\u2066-\u2069]/gu
// What JSON.stringify leaves raw inside strings (it escapes only C0 controls, quotes and backslashes).
const JSON_UNSAFE = /[\u007f-\u009f\u2028\u2029\u200e\u200f\u202a-\u202e\u2066-\u2069]/gu

const hex = (c: string, width: number): string => c.codePointAt(0)!.toString(16).padStart(width, '0')

/**
 * Makes a string from the mesh safe to print: every control character becomes a visible escape
 * (`\x1b`, `\x9b`, `\u202e`) and a backslash is doubled, so the output says exactly what the member
 * sent and the terminal interprets none of it. `keepLines` leaves newlines and tabs as they are.
 */
export function escapeControls (s: string, keepLines = false): string {
  return s.replace(keepLines ? UNSAFE_KEEP_LINES : UNSAFE, (c) => c === '\\' ? '\\\\' : c.length === 1 && c <= '\u00ff' ? `\\x${hex(c, 2)}` : `\\u${hex(c, 4)}`)
}

/** A copy of plain data (objects, arrays) with every string passed through `escapeControls`. */
export function printable<T> (value: T): T {
  if (typeof value === 'string') return escapeControls(value) as T
  if (Array.isArray(value)) return value.map((v: unknown) => printable(v)) as T
  if (value !== null && typeof value === 'object' && Object.getPrototypeOf(value) === Object.prototype) {
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [escapeControls(k), printable(v)])) as T
  }
  return value
}

/**
 * JSON for `--json`: JSON.stringify, plus `\u` escapes for the characters it leaves raw (DEL, C1
 * controls, separators, bidi overrides). Parsing it gives back exactly the same data.
 */
export function toJson (value: unknown): string {
  return JSON.stringify(value, null, 2).replace(JSON_UNSAFE, (c) => `\\u${hex(c, 4)}`)
}
