import { spawn } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import type { PrivateKey } from '@libp2p/interface'
import { privateKeyToProtobuf } from '@libp2p/crypto/keys'
import { systemClock } from '../clock.ts'
import type { Clock } from '../clock.ts'
import { MeshError } from '../errors.ts'
import type { ErrorCode } from '../errors.ts'
import { makeKeyDir } from './key-dir.ts'
import type { IdentityProvider } from './provider.ts'
import { renewingProvider } from './renewing.ts'
import { DEFAULT_SVID_TTL_MS } from './spiffe-id.ts'
import type { SvidFacts } from './svid.ts'

/** What the "auto" provider needs. */
export interface AutoProviderInit {
  home: string
  trustDomain: string
  /** Agent name: `spiffe://<trust-domain>/agent/<name>`. */
  name: string
  /** Host names and IPs callers use (DNS and IP SANs). */
  hosts: string[]
  /** The agent's libp2p key, which endorses each SVID's key (the libp2p TLS extension). */
  libp2pKey: PrivateKey
  ttlMs?: number
  clock?: Clock
  /** Where the key folder is made (tests); `/dev/shm` by default. */
  keyBase?: string
}

/** An issuance that takes longer than this (a hung child) fails, and is tried again. */
const ISSUE_TIMEOUT_MS = 30_000

/** `issue-child` beside this module: `.ts` from the sources, `.js` from the bundle (this code in dist/chunks/). */
function childScript (): string {
  const here = import.meta.url
  if (here.endsWith('.ts')) return fileURLToPath(new URL('./issue-child.ts', here))
  return fileURLToPath(new URL(here.includes('/chunks/') ? '../identity/issue-child.js' : './identity/issue-child.js', here))
}

interface Issued { svid: { spiffeId: string, certPem: string, keyPem: string, bundlePem: string }, facts: SvidFacts }

/** Runs `issue-child` once: the local CA issues and checks one SVID in a process of its own. */
async function issueInChild (input: object): Promise<Issued> {
  const child = spawn(process.execPath, [childScript()], { stdio: ['pipe', 'pipe', 'inherit'], timeout: ISSUE_TIMEOUT_MS })
  let out = ''
  child.stdout.on('data', (d: Buffer) => { out += d.toString() })
  const exited = new Promise<number | null>((resolve, reject) => {
    child.once('error', reject)
    child.once('close', resolve)
  })
  child.stdin.end(JSON.stringify(input))
  const code = await exited
  let parsed: Partial<Issued> & { error?: { code: ErrorCode, message: string } }
  try {
    parsed = JSON.parse(out) as typeof parsed
  } catch {
    throw new MeshError('MESH_ERR_IDENTITY_CA', `the local CA's issuing process ended (${code ?? 'killed'}) without an answer`)
  }
  if (parsed.error !== undefined) throw new MeshError(parsed.error.code, parsed.error.message)
  const f = parsed.facts!
  return { svid: parsed.svid!, facts: { ...f, notBefore: new Date(f.notBefore), notAfter: new Date(f.notAfter) } }
}

/**
 * The "auto" provider: the local CA (created on first use) issues the agent a short-lived SVID at
 * start, and a new one at each half-life, with a new key each time. Each issuance runs in a
 * short-lived process (`issue-child.ts`), so the agent does not keep the X.509 library loaded.
 * Keys are written to a private folder in `/dev/shm` and removed on `stop()`.
 */
export async function startAutoProvider (init: AutoProviderInit): Promise<IdentityProvider> {
  const clock = init.clock ?? systemClock
  const keys = await makeKeyDir(init.keyBase)
  const libp2pKey = Buffer.from(privateKeyToProtobuf(init.libp2pKey)).toString('base64')
  return await renewingProvider('auto', clock, keys, async () => {
    const { svid, facts } = await issueInChild({ home: init.home, trustDomain: init.trustDomain, name: init.name, hosts: init.hosts, ttlMs: init.ttlMs ?? DEFAULT_SVID_TTL_MS, now: clock.now(), libp2pKey })
    return { spiffeId: svid.spiffeId, certPem: svid.certPem, keyPem: svid.keyPem, keyPath: await keys.write('svid.key', svid.keyPem), bundlePem: svid.bundlePem, facts }
  })
}
