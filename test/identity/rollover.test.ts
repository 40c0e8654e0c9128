// CA rollover with an overlap, over real mutual TLS and real libp2p: two agents take their
// identities from files (as from cert-manager or a secret volume). The bundle first holds the old
// and the new CA, then each agent moves to a certificate of the new CA, then the bundle drops the
// old CA. Calls run throughout, and none fails; afterwards the old CA is trusted no more.
import { mkdtemp, rename, rm, writeFile } from 'node:fs/promises'
import { request } from 'node:https'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t from 'tap'
import { z } from 'zod'
import { createMeshNode } from '../../src/node.ts'
import type { MeshNode } from '../../src/node.ts'
import { LocalCa } from '../../src/identity/local-ca.ts'
import { issueSvid } from '../../src/identity/svid.ts'
import { testNodeOptions } from '../helpers/mesh.ts'
import { waitFor } from '../helpers/wait.ts'

const MESH = `rollover-${process.pid}`
t.setTimeout(120_000)
const temp = await mkdtemp(join(tmpdir(), 'mesh-rollover-'))
t.teardown(async () => { await rm(temp, { recursive: true, force: true }) })
// Two CAs of the same trust domain: the one in use, and its successor.
const oldCa = await LocalCa.open(join(temp, 'old'), 'mcp-mesh.local', { create: true })
const newCa = await LocalCa.open(join(temp, 'new'), 'mcp-mesh.local', { create: true })

/** Writes a file whole (aside, then renamed), as a secret volume swaps files. */
async function put (path: string, text: string, mode = 0o644): Promise<void> {
  await writeFile(`${path}.tmp`, text, { mode })
  await rename(`${path}.tmp`, path)
}
/** An agent's identity files: the certificate and key (from `ca`) and the bundle. */
async function files (name: string, ca: LocalCa, bundle: string): Promise<{ certFile: string, keyFile: string, bundleFile: string }> {
  const dir = join(temp, name)
  await rm(dir, { recursive: true, force: true }).then(async () => (await import('node:fs/promises')).mkdir(dir, { recursive: true }))
  const f = { certFile: join(dir, 'svid.pem'), keyFile: join(dir, 'svid.key'), bundleFile: join(dir, 'bundle.pem') }
  await reissue(name, f, ca, bundle)
  return f
}
async function reissue (name: string, f: { certFile: string, keyFile: string, bundleFile: string }, ca: LocalCa, bundle: string): Promise<void> {
  const svid = await issueSvid(ca, { name, hosts: ['127.0.0.1'] })
  // The bundle first (it must trust the new issuer before the certificate names it), then the key
  // and the certificate: the provider keeps its last good identity while the pair is half written.
  await put(f.bundleFile, bundle)
  await put(f.keyFile, svid.keyPem, 0o600)
  await put(f.certFile, svid.certPem)
}

const nodes: MeshNode[] = []
t.teardown(async () => { await Promise.all(nodes.map(async (n) => n.stop())) })
const pFiles = await files('provider', oldCa, oldCa.pem)
const cFiles = await files('caller', oldCa, oldCa.pem)
const provider = createMeshNode(testNodeOptions(MESH, 'provider', { home: temp, tls: { mode: 'strict', provider: 'file', ...pFiles } }))
provider.tool('echo', { capability: 'echo', input: { n: z.number() } }, async ({ n }) => ({ n }))
nodes.push(provider)
await provider.start()
const caller = createMeshNode(testNodeOptions(MESH, 'caller', { home: temp, tls: { mode: 'strict', provider: 'file', ...cFiles }, bootstrap: provider.gossip.addrs }))
nodes.push(caller)
await caller.start()
await caller.ready()
await waitFor('the caller to see echo', () => caller.explain('echo').ranked.length > 0)

/** Waits until an agent has re-advertised (it does on every new identity, bundle included). */
async function readvertised (n: MeshNode, since: number, what: string): Promise<void> {
  await waitFor(what, () => n.gossip.advert!.seq > since, 20_000)
}

t.test('a rollover with an overlap: no call fails, and the old CA is trusted no more', async (t) => {
  let ok = 0
  const failures: string[] = []
  let done = false
  const loops = Array.from({ length: 4 }, async (_, i) => {
    while (!done) await caller.call('echo', { n: i }).then(() => { ok++ }, (err: Error & { code?: string }) => { failures.push(`${err.code}: ${err.message}`) })
  })
  // Concatenated as a script might, with no line break between them: still two CAs.
  const both = oldCa.pem + newCa.pem
  const steps: Array<[string, () => Promise<void>, MeshNode[]]> = [
    ['both bundles hold the old and the new CA', async () => { await put(pFiles.bundleFile, both); await put(cFiles.bundleFile, both) }, [provider, caller]],
    ['the provider moves to a certificate of the new CA', async () => { await reissue('provider', pFiles, newCa, both) }, [provider]],
    ['the caller moves to one of the new CA', async () => { await reissue('caller', cFiles, newCa, both) }, [caller]],
    ['both bundles drop the old CA', async () => { await put(pFiles.bundleFile, newCa.pem); await put(cFiles.bundleFile, newCa.pem) }, [provider, caller]],
  ]
  for (const [what, step, changed] of steps) {
    const seqs = changed.map((n) => n.gossip.advert!.seq)
    const before = ok
    await step()
    for (const [i, n] of changed.entries()) await readvertised(n, seqs[i], `${what}: ${n.options.name} takes it up`)
    await waitFor(`${what}: calls go on`, () => ok >= before + 20).catch((err: Error) => { throw new Error(`${err.message}; failures: ${failures.slice(0, 3).join(" / ")} (${failures.length})`) })
    t.pass(`${what}: taken up, calls go on`)
  }
  done = true
  await Promise.all(loops)
  t.same(failures, [], `no call failed (${ok} calls)`)
  t.equal(caller.stats.failovers, 0, 'and none was refused')

  // The old CA is out: a client with an SVID it issued is not served.
  const old = await issueSvid(oldCa, { name: 'old-client', hosts: [] })
  const u = new URL(provider.url)
  const status = await new Promise<number | string>((resolve) => {
    const req = request({ host: u.hostname, port: u.port, path: u.pathname, method: 'POST', cert: old.certPem, key: old.keyPem, rejectUnauthorized: false, headers: { 'content-type': 'application/json' } }, (res) => { resolve(res.statusCode ?? 0); res.resume() })
    req.on('error', (err) => { resolve(err.message) })
    req.end('{}')
  })
  t.type(status, 'string', `a client of the old CA is refused (${status})`)
})
