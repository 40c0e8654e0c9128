import { mkdir, readFile, writeFile, open, unlink } from 'node:fs/promises'
import { dirname, join } from 'node:path'
import { generateKeyPair, privateKeyFromProtobuf, privateKeyToProtobuf } from '@libp2p/crypto/keys'
import type { PrivateKey } from '@libp2p/interface'
import { MeshError } from '../errors.ts'

/**
 * Loads the node's libp2p key from `path`, or creates an Ed25519 key there (0600, folder 0700).
 * A stable key means a stable peer ID across restarts; the incarnation (start time) still lets a
 * restarted agent win over its own old adverts.
 */
export async function loadOrCreateKey (path: string): Promise<PrivateKey> {
  try {
    const key = privateKeyFromProtobuf(await readFile(path))
    if (key.type !== 'Ed25519') throw new Error(`key type ${key.type} is not Ed25519`)
    return key
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') {
      throw new MeshError('MESH_ERR_KEY_FILE', `cannot use key file ${path}: ${(err as Error).message}; delete it to create a new identity`, { cause: err })
    }
  }
  const key = await generateKeyPair('Ed25519')
  try {
    await mkdir(dirname(path), { recursive: true, mode: 0o700 })
    await writeFile(path, privateKeyToProtobuf(key), { mode: 0o600, flag: 'wx' })
  } catch (err) {
    // Another process created it first: use theirs, so both agree on the identity.
    if ((err as NodeJS.ErrnoException).code === 'EEXIST') return loadOrCreateKey(path)
    throw new MeshError('MESH_ERR_KEY_FILE', `cannot write key file ${path}: ${(err as Error).message}`, { cause: err })
  }
  return key
}

/** A key file held by this process; `release()` frees it for the next start. */
export interface HeldKey {
  key: PrivateKey
  path: string
  release(): Promise<void>
}

/**
 * The default key file is per agent name: `<home>/keys/<name>.key`. Two instances of one agent on
 * one host must not share a peer ID, so a lock file marks the key in use and a second instance
 * takes `<name>-2.key`, and so on. A lock left by a dead process is taken over.
 */
export async function holdDefaultKey (home: string, name: string): Promise<HeldKey> {
  for (let i = 1; i <= 64; i++) {
    const path = join(home, 'keys', i === 1 ? `${name}.key` : `${name}-${i}.key`)
    const lock = `${path}.lock`
    await mkdir(dirname(path), { recursive: true, mode: 0o700 })
    if (!(await tryLock(lock))) continue
    return {
      key: await loadOrCreateKey(path),
      path,
      release: async () => { await unlink(lock).catch(() => {}) },
    }
  }
  throw new MeshError('MESH_ERR_KEY_FILE', `more than 64 instances of agent "${name}" hold keys under ${home}/keys; set keyFile (MCP_MESH_KEY_FILE) explicitly`)
}

async function tryLock (lock: string, retry = true): Promise<boolean> {
  try {
    const fh = await open(lock, 'wx', 0o600)
    await fh.writeFile(String(process.pid))
    await fh.close()
    return true
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err
  }
  const pid = Number((await readFile(lock, 'utf8').catch(() => '')).trim())
  if (!retry || (Number.isInteger(pid) && pid > 0 && pid !== process.pid && isAlive(pid))) return false
  await unlink(lock).catch(() => {})
  return tryLock(lock, false)
}

/** Whether process `pid` runs (one of another user's counts: signalling it is merely not permitted). */
export function isAlive (pid: number): boolean {
  try {
    process.kill(pid, 0)
    return true
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM'
  }
}
