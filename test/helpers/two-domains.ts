// Two organisations on one host for federation tests: a home each (a.test, b.test), each with its
// own local CA, each registering the other as a partner entity; removed at teardown.
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { LocalCa } from '../../src/identity/local-ca.ts'
import { registerEntity } from '../../src/identity/entities.ts'

/** Creates the two homes; returns their paths. */
export async function twoDomains (t: { teardown: (fn: () => Promise<void>) => void }, prefix: string): Promise<{ homeA: string, homeB: string }> {
  const temp = await mkdtemp(join(tmpdir(), prefix))
  t.teardown(async () => { await rm(temp, { recursive: true, force: true }) })
  const homeA = join(temp, 'a')
  const homeB = join(temp, 'b')
  const caA = await LocalCa.open(homeA, 'a.test', { create: true })
  const caB = await LocalCa.open(homeB, 'b.test', { create: true })
  await registerEntity(homeA, 'a.test', { name: 'org-b', caPem: caB.pem, trustDomain: 'b.test' })
  await registerEntity(homeB, 'b.test', { name: 'org-a', caPem: caA.pem, trustDomain: 'a.test' })
  return { homeA, homeB }
}
