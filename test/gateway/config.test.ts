import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t from 'tap'
import { loadGatewayConfig, parseGatewayConfig, toolSetFilter } from '../../src/gateway/config.ts'

const dir = await mkdtemp(join(tmpdir(), 'mesh-gateway-config-'))
t.teardown(async () => { await rm(dir, { recursive: true, force: true }) })

/** The `details` of the MeshError `fn` throws. */
function detailsOf (fn: () => unknown): { file?: string, fields?: string[] } {
  try {
    fn()
  } catch (err) {
    return (err as { details?: { file?: string, fields?: string[] } }).details ?? {}
  }
  throw new Error('expected a throw')
}

t.test('tool sets and defaults parse; a set is its own filter', async (t) => {
  const c = parseGatewayConfig({
    toolSets: { travel: { capabilities: ['weather', 'hotels'], tags: ['+claude', ['eu', 'us']] }, all: {} },
    capabilities: ['weather'],
    tags: ['-beta'],
    callTimeoutMs: 5000,
    bootstrap: ['/ip4/127.0.0.1/tcp/4001/p2p/x'],
    mesh: 'prod',
  }, 'gw.json')
  t.same(Object.keys(c.toolSets), ['travel', 'all'])
  t.same(toolSetFilter(c.toolSets.travel), { capabilities: ['weather', 'hotels'], tags: ['+claude', ['eu', 'us']] })
  t.same(toolSetFilter(c.toolSets.all), {}, 'an empty set shows everything')
  t.equal(c.callTimeoutMs, 5000)
  t.same(parseGatewayConfig({}, 'empty.json').toolSets, {}, 'no sets: none')
})

t.test('bad input: MESH_ERR_GATEWAY_CONFIG naming the file and each field at fault', async (t) => {
  t.throws(() => parseGatewayConfig({ toolSet: {} }, 'gw.json'), { code: 'MESH_ERR_GATEWAY_CONFIG', details: { file: 'gw.json', fields: ['toolSet'] } }, 'an unknown key is named (strict: a typo fails)')
  t.same(detailsOf(() => parseGatewayConfig({ toolSets: { travel: { capability: ['weather'] } } }, 'gw.json')).fields, ['toolSets.travel.capability'], 'an unknown key inside a set')
  t.same(detailsOf(() => parseGatewayConfig({ toolSets: { '..': {} } }, 'gw.json')).fields, ['toolSets...'], 'a set name that is no URL path segment')
  t.same(detailsOf(() => parseGatewayConfig({ toolSets: { 'a/b': {} } }, 'gw.json')).fields, ['toolSets.a/b'])
  t.same(detailsOf(() => parseGatewayConfig({ toolSets: { t: { capabilities: ['has space'] } } }, 'gw.json')).fields, ['toolSets.t.capabilities.0'], 'a capability name')
  t.same(detailsOf(() => parseGatewayConfig({ toolSets: { t: { tags: ['+'] } } }, 'gw.json')).fields, ['toolSets.t.tags'], 'a tag expression the resolver refuses')
  t.same(detailsOf(() => parseGatewayConfig({ tags: [['-beta']] }, 'gw.json')).fields, ['tags'], 'an excluded tag in an OR group')
  t.same(detailsOf(() => parseGatewayConfig({ callTimeoutMs: 0 }, 'gw.json')).fields, ['callTimeoutMs'])
  t.same(detailsOf(() => parseGatewayConfig([], 'gw.json')).fields, ['(the file)'], 'not an object')
  t.throws(() => parseGatewayConfig({ callTimeoutMs: 0 }, 'gw.json'), { message: /gw\.json/ }, 'the message names the file')
})

t.test('loading: a missing file and a file that is not JSON are MESH_ERR_GATEWAY_CONFIG too', async (t) => {
  const good = join(dir, 'good.json')
  await writeFile(good, JSON.stringify({ toolSets: { travel: { capabilities: ['weather'] } } }))
  t.same((await loadGatewayConfig(good)).toolSets.travel, { capabilities: ['weather'] })
  await t.rejects(loadGatewayConfig(join(dir, 'missing.json')), { code: 'MESH_ERR_GATEWAY_CONFIG', details: { file: join(dir, 'missing.json') } })
  const bad = join(dir, 'bad.json')
  await writeFile(bad, '{ toolSets: }')
  await t.rejects(loadGatewayConfig(bad), { code: 'MESH_ERR_GATEWAY_CONFIG', details: { file: bad }, message: /not JSON/ })
  const invalid = join(dir, 'invalid.json')
  await writeFile(invalid, JSON.stringify({ toolSets: { x: { tags: 'eu' } } }))
  await t.rejects(loadGatewayConfig(invalid), { code: 'MESH_ERR_GATEWAY_CONFIG', details: { file: invalid, fields: ['toolSets.x.tags'] } })
})
