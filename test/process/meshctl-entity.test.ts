// `meshctl entity register | list | revoke` as a user runs them (real processes), against real CA
// certificates made at test time: what is refused and why, and what agents read.
import { spawn } from 'node:child_process'
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import t from 'tap'
import { collect } from '../helpers/collect.ts'
import { LocalCa } from '../../src/identity/local-ca.ts'
import { issueSvid } from '../../src/identity/svid.ts'
import { listEntities } from '../../src/identity/entities.ts'

const root = fileURLToPath(new URL('../..', import.meta.url))
const home = await mkdtemp(join(tmpdir(), 'mesh-entity-'))
const partnerHome = await mkdtemp(join(tmpdir(), 'mesh-entity-partner-'))
t.teardown(async () => {
  await rm(home, { recursive: true, force: true })
  await rm(partnerHome, { recursive: true, force: true })
})
const partner = await LocalCa.open(partnerHome, 'partner.example', { create: true })
const own = await LocalCa.open(partnerHome, 'mcp-mesh.local', { create: true })
const files = { partner: join(partnerHome, 'partner-ca.pem'), own: join(partnerHome, 'own-ca.pem'), leaf: join(partnerHome, 'leaf.pem') }
await writeFile(files.partner, partner.pem)
await writeFile(files.own, own.pem)
await writeFile(files.leaf, (await issueSvid(partner, { name: 'x', hosts: [] })).certPem)

async function meshctl (...args: string[]): Promise<{ code: number | null, out: string, err: string }> {
  return collect(spawn(process.execPath, ['bin/meshctl.js', 'entity', ...args], { cwd: root, env: { ...process.env, NO_COLOR: '1', MCP_MESH_HOME: home }, stdio: ['ignore', 'pipe', 'pipe'] }))
}

t.test('register, list, revoke', async (t) => {
  const r = await meshctl('register', 'partner-corp', '--ca-cert', files.partner, '--trust-domain', 'partner.example')
  t.equal(r.code, 0, r.err)
  t.match(r.out, 'registered partner-corp: agents of partner.example are trusted peers')
  t.same((await listEntities(home)).map((e) => e.trustDomain), ['partner.example'], 'written where agents read it')
  const list = await meshctl('list', '--json')
  t.match(JSON.parse(list.out), [{ name: 'partner-corp', trustDomain: 'partner.example' }])
  const revoked = await meshctl('revoke', 'partner-corp')
  t.equal(revoked.code, 0, revoked.err)
  t.match(revoked.out, 'revoked partner-corp: partner.example is no longer trusted')
  t.match((await meshctl('list')).out, 'no entity registered')
})

t.test('refusals, each saying why', async (t) => {
  const cases: Array<[string[], RegExp]> = [
    [['register', 'self', '--ca-cert', files.own, '--trust-domain', 'mcp-mesh.local'], /MESH_ERR_ENTITY_INVALID: mcp-mesh\.local is this mesh's own trust domain/],
    [['register', 'leafy', '--ca-cert', files.leaf, '--trust-domain', 'partner.example'], /MESH_ERR_ENTITY_INVALID: .* is not a CA certificate/],
    [['register', 'Bad Name', '--ca-cert', files.partner, '--trust-domain', 'partner.example'], /is not an entity name/],
    [['revoke', 'nobody'], /MESH_ERR_ENTITY_INVALID: no entity named nobody is registered/],
  ]
  for (const [args, why] of cases) {
    const r = await meshctl(...args)
    t.equal(r.code, 1, args.join(' '))
    t.match(r.err, why)
  }
  t.equal((await meshctl('register', 'partner-corp', '--ca-cert', files.partner, '--trust-domain', 'partner.example')).code, 0)
  const twice = await meshctl('register', 'another', '--ca-cert', files.partner, '--trust-domain', 'partner.example')
  t.match(twice.err, /the trust domain partner\.example is registered already, as partner-corp/)
  const usage = await meshctl('register', 'x')
  t.equal(usage.code, 2, 'a missing --ca-cert is a usage error')
})

t.test('meshctl revoke: by SPIFFE ID or certificate, listed, and a usage error without either', async (t) => {
  const run = async (...args: string[]) => collect(spawn(process.execPath, ['bin/meshctl.js', 'revoke', ...args], { cwd: root, env: { ...process.env, NO_COLOR: '1', MCP_MESH_HOME: home }, stdio: ['ignore', 'pipe', 'pipe'] }))
  const byId = await run('spiffe://partner.example/agent/x')
  t.equal(byId.code, 0, byId.err)
  t.match(byId.out, 'revoked spiffe://partner.example/agent/x (every certificate)')
  const byCert = await run('--cert', files.leaf)
  t.equal(byCert.code, 0, byCert.err)
  t.match(byCert.out, '(this certificate)')
  const list = JSON.parse((await run('--list', '--json')).out) as Array<{ spiffeId: string, keyHash?: string }>
  t.equal(list.length, 2)
  t.equal(list.filter((r) => r.keyHash !== undefined).length, 1, 'one names a certificate key')
  t.equal((await run()).code, 2, 'neither: a usage error')
  t.match((await run('not-a-spiffe-id')).err, /MESH_ERR_IDENTITY_INVALID: cannot revoke "not-a-spiffe-id"/)
})
