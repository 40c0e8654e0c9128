import { existsSync } from 'node:fs'
import { mkdtemp, rename, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'

/** A private folder for one process's private keys, removed on `remove()`. */
export interface KeyDir {
  readonly dir: string
  /** Writes `pem` to `<dir>/<name>` (0600), replacing the old file whole; returns the path. */
  write(name: string, pem: string): Promise<string>
  remove(): Promise<void>
}

/**
 * Makes the folder where an agent keeps its SVID's private key: under `/dev/shm` where it exists
 * (memory, never written to disk), a private temporary folder otherwise; the folder 0700 and each
 * key 0600, as MCP Mesh keeps the keys it fetches.
 */
export async function makeKeyDir (base = existsSync('/dev/shm') ? '/dev/shm' : tmpdir()): Promise<KeyDir> {
  const dir = await mkdtemp(join(base, 'mcp-mesh-')) // mkdtemp makes it 0700
  let n = 0
  return {
    dir,
    async write (name, pem) {
      const path = join(dir, name)
      const tmp = join(dir, `.${name}.${++n}`)
      await writeFile(tmp, pem, { mode: 0o600, flag: 'wx' })
      await rename(tmp, path) // a reader never sees half a key
      return path
    },
    async remove () {
      await rm(dir, { recursive: true, force: true })
    },
  }
}
