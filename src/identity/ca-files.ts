import { stat } from 'node:fs/promises'
import { join } from 'node:path'
import { MeshError } from '../errors.ts'

// Apart from local-ca.ts so that reading them (revocations do) does not load the X.509 library.

/** The files of the local CA of one trust domain. */
export function caPaths (home: string, trustDomain: string): { dir: string, cert: string, key: string } {
  const dir = join(home, 'ca', trustDomain)
  return { dir, cert: join(dir, 'ca.pem'), key: join(dir, 'ca.key') }
}

/**
 * Refuses a private key file that others than its owner can read or write: whoever reads a CA
 * key can mint every identity of the trust domain.
 */
export async function checkKeyFileMode (path: string): Promise<void> {
  const { mode } = await stat(path)
  if ((mode & 0o077) !== 0) {
    throw new MeshError('MESH_ERR_IDENTITY_KEY_PERMISSIONS', `${path} has mode ${(mode & 0o777).toString(8).padStart(4, '0')}: others than its owner can use it. Run: chmod 600 ${path}`, { details: { path, mode: mode & 0o777 } })
  }
}
