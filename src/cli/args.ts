import { parseArgs } from 'node:util'
import type { ParseArgsConfig } from 'node:util'

/** Exit codes every command shares. */
export const Exit = { ok: 0, failure: 1, usage: 2, unreachable: 3, noProvider: 4 } as const

/** A usage error: printed with the command's help, exit code 2. */
export class UsageError extends Error {
  override name = 'UsageError'
}

/** Parses argv strictly: an unknown flag is a usage error that names it. */
export function parse<T extends NonNullable<ParseArgsConfig['options']>> (argv: string[], options: T) {
  try {
    return parseArgs({ args: argv, options, allowPositionals: true, strict: true })
  } catch (err) {
    throw new UsageError((err as Error).message)
  }
}

/** Colours for human output (each a no-op when colour is off). */
export type Painter = ReturnType<typeof painter>

/** Colour only when writing to a terminal and NO_COLOR is unset. */
export function painter (stream: NodeJS.WriteStream = process.stdout) {
  const on = stream.isTTY === true && process.env.NO_COLOR === undefined
  const wrap = (code: number) => (s: string) => on ? `\x1b[${code}m${s}\x1b[0m` : s
  return { green: wrap(32), yellow: wrap(33), red: wrap(31), dim: wrap(2), bold: wrap(1) }
}

/** Splits a comma list, dropping blanks. */
export function commaList (v: string | string[] | undefined): string[] {
  if (v === undefined) return []
  return (Array.isArray(v) ? v : [v]).flatMap((s) => s.split(',')).map((s) => s.trim()).filter((s) => s !== '')
}
