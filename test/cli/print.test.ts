// Terminal escape injection: a member whose advert carries control characters and ANSI escapes,
// printed by every meshctl formatter, must reach the terminal as visible text, never raw.
import t from 'tap'
import { ManualClock } from '../../src/clock.ts'
import type { Advert } from '../../src/topology/advert.ts'
import { Replica } from '../../src/topology/replica.ts'
import { createResolver } from '../../src/topology/resolver.ts'
import { painter } from '../../src/cli/args.ts'
import { escapeControls, printable, toJson } from '../../src/cli/print.ts'
import { formatList, memberRow } from '../../src/cli/list.ts'
import { formatStatus } from '../../src/cli/status.ts'
import type { StatusRow } from '../../src/cli/status.ts'
import { formatExplain } from '../../src/cli/explain.ts'

/** Any character a terminal may interpret: C0 but newline, DEL, C1, separators, bidi overrides. */
const RAW = /[\u0000-\u0009\u000b-\u001f\u007f-\u009f\u2028\u2029\u200e\u200f\u202a-\u202e\u2066-\u2069]/u
/** For JSON: the same, newline included (JSON.stringify's own indentation aside, strings hold none). */
const RAW_IN_JSON_STRINGS = /[\u0000-\u001f\u007f-\u009f\u2028\u2029\u200e\u200f\u202a-\u202e\u2066-\u2069]/u

// What a hostile member can put in its advert: colour and cursor codes (ESC [), an 8-bit CSI
// (0x9b), an OSC that sets the window title ended by BEL, DEL, a fake second line, a bidi override.
const ESC = '\u001b'
const hostile = {
  name: `evil${ESC}[2J${ESC}[31mweather`,
  tool: `get${ESC}]0;pwned\u0007_weather`,
  version: '1.0.0',
  tag: `fast\u009b31m\u007f`,
  endpoint: `http://127.0.0.1:1/mcp\n  tool       fake: injected@1.0.0\u202e`,
}

const clock = new ManualClock()
const replica = new Replica({ selfId: 'observer', clock, timing: { suspicionMinTimeoutMs: 1_000, suspicionMaxTimeoutMs: 6_000, suspicionConfirmations: 3, maxAdvertAgeMs: 3_600_000, maxClockSkewMs: 300_000, tombstoneMs: 7_200_000 } })
t.teardown(() => { replica.stop() })
// Straight into the replica: whatever the advert schema allows, the printing must hold on its own.
const advert = {
  v: 1, mesh: 'm', name: hostile.name, role: 'agent', peerId: `12D3KooWevil${ESC}[0m`, incarnation: 1, seq: 0, issuedAt: clock.now(), status: 'alive',
  addrs: [], endpoint: hostile.endpoint, dependencies: [{ capability: `hotels${ESC}[5m` }],
  tools: [{ name: hostile.tool, capability: 'weather', version: hostile.version, tags: [hostile.tag] }],
} as Advert
replica.applyAdvert(advert, new Uint8Array([1]))
const members = [...replica.members()]
const plain = painter({ isTTY: false } as NodeJS.WriteStream)

type TapTest = Parameters<Parameters<typeof t.test>[0]>[0]
const noRaw = (t: TapTest, out: string, what: string): void => {
  const m = RAW.exec(out)
  t.equal(m, null, `${what} holds no raw control character${m === null ? '' : ` (found U+${m[0].codePointAt(0)!.toString(16).padStart(4, '0')})`}`)
  t.ok(out.includes('\\x1b['), `${what} shows the escapes as text`)
}

t.test('escapeControls makes every control visible and is unambiguous', async (t) => {
  t.equal(escapeControls(`a${ESC}[31mb`), 'a\\x1b[31mb')
  t.equal(escapeControls('\u009b\u007f\u0007\u0000'), '\\x9b\\x7f\\x07\\x00', 'CSI, DEL, BEL, NUL')
  t.equal(escapeControls('line\nnext\ttab'), 'line\\x0anext\\x09tab', 'newlines cannot forge lines')
  t.equal(escapeControls('line\nnext\ttab', true), 'line\nnext\ttab', 'unless the text is multi-line by nature')
  t.equal(escapeControls('x\u202ey\u2066z\u2028'), 'x\\u202ey\\u2066z\\u2028', 'bidi overrides and separators')
  t.equal(escapeControls('back\\slash'), 'back\\\\slash', 'a backslash is doubled, so "\\x1b" typed by a member is not an escape')
  t.equal(escapeControls('weather-claude 1.2.0 héllo ☀'), 'weather-claude 1.2.0 héllo ☀', 'ordinary text is unchanged')
  for (let c = 0; c <= 0xa0; c++) {
    const s = escapeControls(String.fromCharCode(c))
    if (RAW.test(s) || s.includes('\n')) t.fail(`U+${c.toString(16)} printed raw`)
  }
})

t.test('printable escapes every string of plain data and leaves other values alone', async (t) => {
  const data = { [`k${ESC}`]: [`v${ESC}`, 3, null, { deep: `\u009b` }], n: 1, b: true }
  t.same(printable(data), { 'k\\x1b': ['v\\x1b', 3, null, { deep: '\\x9b' }], n: 1, b: true })
  t.same(data[`k${ESC}`], [`v${ESC}`, 3, null, { deep: '\u009b' }], 'the original is not modified')
})

t.test('meshctl list prints the hostile member escaped', async (t) => {
  const out = formatList(members.map(memberRow), 'm', plain)
  noRaw(t, out, 'list')
  t.equal(out.split('\n').length, 3, 'header, one member, the count: no injected line')
})

t.test('meshctl status prints the hostile member escaped', async (t) => {
  const a = members[0].advert
  const row: StatusRow = {
    name: a.name, peerId: a.peerId, liveness: 'alive', status: a.status, incarnation: a.incarnation, seq: a.seq, endpoint: a.endpoint,
    ready: `ready${ESC}[8m`, // what the member's own /readyz said
    spiffeId: `spiffe://mcp-mesh.local/agent/${ESC}[2J`,
    certificateExpires: '2026-12-03T00:00:00.000Z',
    tools: a.tools.map((x) => ({ name: x.name, capability: x.capability, version: x.version, tags: x.tags })),
    dependencies: a.dependencies.map((d) => ({ ...d, resolvesTo: a.name })),
  }
  const out = formatStatus([row], plain)
  noRaw(t, out, 'status')
  t.equal(out.split('\n').length, 5, 'name, endpoint, identity, one tool, one dependency: no injected line')
})

t.test('meshctl explain prints the hostile member escaped', async (t) => {
  const selected = formatExplain(createResolver().resolve(members, { capability: 'weather' }))
  noRaw(t, selected, 'explain (selected)')
  const rejected = formatExplain(createResolver().resolve(members, { capability: 'weather', tags: ['-fast\u009b31m\u007f'] }))
  noRaw(t, rejected, 'explain (rejected, with the reason quoting the tag)')
})

t.test('--json escapes what JSON.stringify leaves raw, and parses back to the same data', async (t) => {
  const rows = members.map(memberRow)
  t.ok(RAW_IN_JSON_STRINGS.test(JSON.stringify(rows)), 'JSON.stringify alone leaves C1 controls and bidi overrides raw')
  const out = toJson(rows)
  t.equal(RAW_IN_JSON_STRINGS.exec(out.replace(/\n */g, '')), null, 'toJson leaves none')
  t.same(JSON.parse(out), JSON.parse(JSON.stringify(rows)), 'and parses to what JSON.stringify gives')
})
