// Issues one SVID from the local CA and prints it as JSON on stdout. The "auto" provider runs this
// in a short-lived process, so agents never load the X.509 library (about 9 MB that an agent would
// keep for good, BENCHMARKS.md "Memory"). Input, as JSON on stdin: { home, trustDomain, name,
// hosts, ttlMs, now, libp2pKey (the agent's key, protobuf, base64) }. A failure prints
// { error: { code, message } } and exits 1.
import { privateKeyFromProtobuf } from '@libp2p/crypto/keys'
import { isMeshError } from '../errors.ts'
import { LocalCa } from './local-ca.ts'
import { checkSvid, issueSvid } from './svid.ts'
import { x509 } from './x509.ts'

interface Input { home: string, trustDomain: string, name: string, hosts: string[], ttlMs: number, now: number, libp2pKey: string }

try {
  let text = ''
  for await (const chunk of process.stdin) text += String(chunk)
  const input = JSON.parse(text) as Input
  const ca = await LocalCa.open(input.home, input.trustDomain, { create: true })
  const svid = await issueSvid(ca, { name: input.name, hosts: input.hosts, ttlMs: input.ttlMs, now: input.now, libp2pKey: privateKeyFromProtobuf(Buffer.from(input.libp2pKey, 'base64')) })
  const facts = await checkSvid(new x509.X509Certificate(svid.certPem))
  process.stdout.write(JSON.stringify({ svid: { spiffeId: svid.spiffeId, certPem: svid.certPem, keyPem: svid.keyPem, bundlePem: svid.bundlePem }, facts }))
} catch (err) {
  process.stdout.write(JSON.stringify({ error: { code: isMeshError(err) ? err.code : 'MESH_ERR_IDENTITY_CA', message: (err as Error).message } }))
  process.exitCode = 1
}
