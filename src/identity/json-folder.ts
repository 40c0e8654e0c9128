import { mkdir, readdir, readFile, rename, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import type { z } from 'zod'

/**
 * A folder of small JSON files, one record each (entities, revocations): read whole by every
 * agent of the home, and written aside then renamed into place, so a reader watching the folder
 * never reads half a file.
 */

/** Every `*.json` record of `dir` that parses with `schema` (others are skipped), by file name. */
export async function readJsonFolder<S extends z.ZodType> (dir: string, schema: S): Promise<Array<{ file: string, record: z.infer<S> }>> {
  let files: string[]
  try {
    files = (await readdir(dir)).filter((f) => f.endsWith('.json'))
  } catch {
    return []
  }
  const out: Array<{ file: string, record: z.infer<S> }> = []
  for (const file of files.sort()) {
    try {
      const r = schema.safeParse(JSON.parse(await readFile(join(dir, file), 'utf8')))
      if (r.success) out.push({ file, record: r.data })
    } catch { /* removed meanwhile, or not JSON */ }
  }
  return out
}

/** Writes `<dir>/<name>.json` whole (the folder made 0700 if new). */
export async function writeJsonRecord (dir: string, name: string, record: unknown): Promise<void> {
  await mkdir(dir, { recursive: true, mode: 0o700 })
  const tmp = join(dir, `.${name}.${process.pid}.tmp`)
  await writeFile(tmp, JSON.stringify(record, null, 2) + '\n', { mode: 0o644 })
  await rename(tmp, join(dir, `${name}.json`))
}
