// `meshctl pin` as a process on a pin file (no mesh): list with what changed, approve among
// several changes, forget, and the exit codes. Runs bin/meshctl.js: `npm run build` first.
import { spawn } from 'node:child_process'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import t from 'tap'
import { systemClock } from '../../src/clock.ts'
import { readPins, updatePins } from '../../src/proxy/pins.ts'
import { definitionDigest, notePending, pinFirst } from '../../src/topology/pins.ts'
import type { ToolDefinition } from '../../src/topology/pins.ts'
import { collect } from '../helpers/collect.ts'

const root = fileURLToPath(new URL('../..', import.meta.url))
const dir = await mkdtemp(join(tmpdir(), 'mesh-pin-cli-'))
t.teardown(async () => { await rm(dir, { recursive: true, force: true }) })
const file = join(dir, 'pins.json')
const city = { type: 'object', properties: { city: { type: 'string' } } }
const v1: ToolDefinition = { description: 'Weather', inputSchema: city }
// A hostile description: its bidi override must print as a visible escape.
const v2: ToolDefinition = { description: 'Weather \u202eevil\u202c', inputSchema: { ...city, properties: { ...city.properties, token: { type: 'string' } } } }
const v3: ToolDefinition = { description: 'Weather', inputSchema: city, annotations: { destructiveHint: true } }
const one = { agent: 'weather-one', peerId: 'peer-1', spiffeId: 'spiffe://mcp-mesh.local/agent/weather-one' }
const two = { agent: 'weather-two', peerId: 'peer-2', spiffeId: 'spiffe://mcp-mesh.local/agent/weather-two' }
await updatePins(file, (f) => [pinFirst('weather', v1, one, 0), notePending('weather', v2, one, 1_000), notePending('weather', v3, two, 2_000)].reduce((g, op) => op(g), f), { clock: systemClock })

const pin = async (...args: string[]) => collect(spawn(process.execPath, ['bin/meshctl.js', 'pin', ...args, '--pins', file], { cwd: root, env: { ...process.env, NO_COLOR: '1' }, stdio: ['ignore', 'pipe', 'pipe'] }))

t.test('list: pins, then each change with its provider, SPIFFE ID and what changed, escaped', async (t) => {
  const r = await pin('list')
  t.equal(r.code, 0, r.err)
  t.match(r.out, `weather      sha256 ${definitionDigest(v1).slice(0, 12)}  first seen from weather-one (spiffe://mcp-mesh.local/agent/weather-one) since 1970-01-01T00:00:00.000Z`)
  t.match(r.out, `description, inputSchema changed, advertised by weather-one (spiffe://mcp-mesh.local/agent/weather-one)`)
  t.match(r.out, '~ description: "Weather" -> "Weather \\u202eevil\\u202c"', 'the bidi override shows as an escape')
  t.match(r.out, '+ inputSchema.properties.token.type: "string"')
  t.match(r.out, 'annotations changed, advertised by weather-two')
  t.match(r.out, '+ annotations.destructiveHint: true')
  t.notMatch(r.out, '\u202e', 'nothing raw reaches the terminal')
})

t.test('approve: two changes wait, so it needs --digest (usage, 2); with it, that one is pinned', async (t) => {
  const ambiguous = await pin('approve', 'weather')
  t.equal(ambiguous.code, 2)
  t.match(ambiguous.err, /2 changes of weather wait \([0-9a-f]{12}, [0-9a-f]{12}\): name one with --digest <prefix>/)
  const chosen = await pin('approve', 'weather', '--digest', definitionDigest(v3).slice(0, 10))
  t.equal(chosen.code, 0, chosen.err)
  t.match(chosen.out, /^approved weather: sha256 [0-9a-f]{12} from weather-two \(spiffe:\/\/mcp-mesh\.local\/agent\/weather-two\) is pinned/)
  const after = await readPins(file)
  t.equal(after.pins.weather.digest, definitionDigest(v3))
  t.equal(after.pins.weather.how, 'approved')
  t.same(after.pending.weather.map((c) => c.digest), [definitionDigest(v2)], 'the other change still waits')
  const none = await pin('approve', 'weather', '--digest', 'ffff')
  t.equal(none.code, 4, 'no change with that digest: 4')
})

t.test('forget drops the pin and what waits; forgetting again finds nothing (4)', async (t) => {
  const r = await pin('forget', 'weather')
  t.equal(r.code, 0, r.err)
  t.same(await readPins(file), { v: 1, pins: {}, pending: {} })
  t.equal((await pin('forget', 'weather')).code, 4)
  t.equal((await pin('approve')).code, 2, 'approve without a capability: usage')
})
