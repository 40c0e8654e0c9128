import t from 'tap'
import { AdvertSchema } from '../../src/topology/advert.ts'
import type { Advert, AdvertInput, Liveness, Member } from '../../src/topology/advert.ts'
import type { DependencySpec } from '../../src/topology/dependency.ts'
import { createResolver, formatExplanation, matchTags } from '../../src/topology/resolver.ts'
import type { TagExpression } from '../../src/topology/resolver.ts'

interface ToolOpts { name?: string, capability?: string, version?: string, tags?: string[], streaming?: boolean }
interface MemberOpts { liveness?: Liveness, status?: string, role?: string, tools?: ToolOpts[], endpoint?: string, addrs?: string[] }

/** A validated advert for `peerId` offering one `weather` tool unless told otherwise. */
function advert (peerId: string, opts: MemberOpts = {}): Advert {
  const input: AdvertInput = {
    v: 1,
    mesh: 'test',
    name: `agent-${peerId}`,
    peerId,
    incarnation: 1,
    seq: 0,
    issuedAt: 0,
    addrs: opts.addrs ?? [`/dns4/${peerId}/tcp/4001`],
    tools: (opts.tools ?? [{}]).map((o) => ({
      name: o.name ?? 'get_weather',
      capability: o.capability ?? 'weather',
      version: o.version ?? '1.0.0',
      tags: o.tags ?? [],
      ...(o.streaming === undefined ? {} : { streaming: o.streaming }),
    })),
  }
  if (opts.role !== undefined) input.role = opts.role
  if (opts.status !== undefined) input.status = opts.status
  if (opts.endpoint !== undefined) input.endpoint = opts.endpoint
  return AdvertSchema.parse(input)
}

function member (peerId: string, opts: MemberOpts = {}): Member {
  return { advert: advert(peerId, opts), liveness: opts.liveness ?? 'alive' }
}

/** One tool per member, tagged as given. */
const tagged = (peerId: string, ...tags: string[]): Member => member(peerId, { tools: [{ tags }] })
const versioned = (peerId: string, version: string): Member => member(peerId, { tools: [{ version }] })

t.test('matchTags: every tag form', async (t) => {
  const cases: Array<{ name: string, tags: string[], expr: TagExpression, ok: boolean, score: number, reasons?: string[] }> = [
    { name: 'empty expression', tags: ['a'], expr: [], ok: true, score: 0, reasons: [] },
    { name: 'required present', tags: ['a', 'b'], expr: ['a'], ok: true, score: 0 },
    { name: 'required missing', tags: ['b'], expr: ['a'], ok: false, score: 0, reasons: ['missing required tag a'] },
    { name: 'preferred present scores', tags: ['a', 'b'], expr: ['+a', '+b'], ok: true, score: 2, reasons: ['preferred tag a present (+1)', 'preferred tag b present (+1)'] },
    { name: 'preferred missing: no penalty', tags: [], expr: ['+a'], ok: true, score: 0, reasons: [] },
    { name: 'excluded absent', tags: ['b'], expr: ['-a'], ok: true, score: 0 },
    { name: 'excluded present', tags: ['a'], expr: ['-a'], ok: false, score: 0, reasons: ['has excluded tag a'] },
    { name: 'OR group, one present', tags: ['b'], expr: [['a', 'b']], ok: true, score: 0 },
    { name: 'OR group, none present', tags: ['c'], expr: [['a', 'b']], ok: false, score: 0, reasons: ['none of [a, b] present'] },
    { name: 'OR group with preferred element present', tags: ['a'], expr: [['+a', 'b']], ok: true, score: 1 },
    { name: 'OR group with preferred element absent', tags: ['b'], expr: [['+a', 'b']], ok: true, score: 0 },
    { name: 'combined, all satisfied', tags: ['prod', 'eu', 'fast'], expr: ['prod', '+fast', '+gpu', '-beta', ['eu', 'us']], ok: true, score: 1 },
    {
      name: 'combined, several failures all reported',
      tags: ['beta', 'asia'],
      expr: ['prod', '-beta', ['eu', 'us']],
      ok: false,
      score: 0,
      reasons: ['missing required tag prod', 'has excluded tag beta', 'none of [eu, us] present'],
    },
  ]
  for (const c of cases) {
    const r = matchTags(c.tags, c.expr)
    t.equal(r.ok, c.ok, `${c.name}: ok`)
    t.equal(r.score, c.score, `${c.name}: score`)
    if (c.reasons !== undefined) t.same(r.reasons, c.reasons, `${c.name}: reasons`)
  }
})

t.test('tags filter and score providers', async (t) => {
  const members = [tagged('p1', 'eu'), tagged('p2', 'us', 'beta'), tagged('p3', 'us', 'fast')]
  const cases: Array<{ name: string, tags: TagExpression, selected: string | null, ranked: string[] }> = [
    { name: 'required', tags: ['eu'], selected: 'p1', ranked: ['p1'] },
    { name: 'excluded', tags: ['us', '-beta'], selected: 'p3', ranked: ['p3'] },
    { name: 'OR group', tags: [['eu', 'us'], '-fast'], selected: 'p1', ranked: ['p1', 'p2'] },
    { name: 'OR group, nothing matches', tags: [['asia', 'africa']], selected: null, ranked: [] },
    { name: 'preferred beats round robin', tags: ['+fast'], selected: 'p3', ranked: ['p3', 'p1', 'p2'] },
    { name: 'preferred inside OR group', tags: [['eu', '+fast']], selected: 'p3', ranked: ['p3', 'p1'] },
  ]
  for (const c of cases) {
    const r = createResolver().resolve(members, { capability: 'weather', tags: c.tags })
    t.equal(r.selected?.peerId ?? null, c.selected, `${c.name}: selected`)
    t.same(r.ranked.map((x) => x.peerId), c.ranked, `${c.name}: ranked`)
  }
  // The preferred winner stays the winner on every call: round robin only spreads over equals.
  const resolver = createResolver()
  for (let i = 0; i < 4; i++) t.equal(resolver.resolve(members, { capability: 'weather', tags: ['+fast'] }).selected?.peerId, 'p3')
})

t.test('version ranges', async (t) => {
  const cases: Array<{ name: string, versions: string[], range: string, selected: string | null }> = [
    { name: 'match', versions: ['1.2.0'], range: '^1.0.0', selected: '1.2.0' },
    { name: 'mismatch', versions: ['1.0.0'], range: '^2', selected: null },
    { name: 'prerelease excluded by a plain range', versions: ['2.0.0-beta.1', '1.9.0'], range: '>=1.5', selected: '1.9.0' },
    { name: 'prerelease of the same tuple allowed', versions: ['2.0.0-beta.2'], range: '>=2.0.0-beta.1', selected: '2.0.0-beta.2' },
    { name: 'highest satisfying version wins', versions: ['1.1.0', '1.10.0', '1.9.0', '2.0.0'], range: '^1', selected: '1.10.0' },
  ]
  for (const c of cases) {
    const members = c.versions.map((v, i) => versioned(`p${i}`, v))
    const r = createResolver().resolve(members, { capability: 'weather', version: c.range })
    t.equal(r.selected?.version ?? null, c.selected, c.name)
  }
  const r = createResolver().resolve([versioned('p1', '1.0.0')], { capability: 'weather', version: '^2' })
  t.same(r.explanation[0].reasons, ['version 1.0.0 does not satisfy ^2'])
  t.equal(r.explanation[0].verdict, 'rejected')
})

t.test('a streaming dependency resolves only tools that advertise streaming, and explain says why', async (t) => {
  const members = [member('a'), member('b', { tools: [{ streaming: true }] }), member('c', { tools: [{ streaming: false }] })]
  const r = createResolver().resolve(members, { capability: 'weather', streaming: true })
  t.same(r.ranked.map((c) => c.peerId), ['b'])
  for (const peer of ['a', 'c']) {
    t.match(r.explanation.find((row) => row.peerId === peer)?.reasons, [/does not stream partial results/], `${peer} rejected`)
  }
  t.match(formatExplanation(r), /spec 0: capability weather, streaming/)
  t.equal(createResolver().resolve(members, 'weather').ranked.length, 3, 'a dependency that does not ask takes every provider')
  t.equal(advert('d').tools[0].streaming, undefined, 'an advert without the field (an older agent) parses: not streaming')
})

t.test('ordered fallback: first spec that resolves wins', async (t) => {
  const members = [tagged('p1', 'cheap'), versioned('p2', '1.0.0')]
  const dep: DependencySpec = [
    { capability: 'weather', version: '^3' },
    { capability: 'weather', tags: ['cheap'] },
    'weather',
  ]
  const r = createResolver().resolve(members, dep)
  t.equal(r.specIndex, 1)
  t.equal(r.selected?.peerId, 'p1')
  t.equal(r.spec.length, 3)
  t.same(r.explanation.map((x) => [x.specIndex, x.peerId, x.verdict]), [
    [0, 'p1', 'rejected'],
    [0, 'p2', 'rejected'],
    [1, 'p1', 'selected'],
    [1, 'p2', 'rejected'],
  ], 'rows for every spec tried, none for specs after the winner')
  const text = formatExplanation(r)
  t.match(text, /resolved by spec 1/)
  t.match(text, /spec 2: capability weather\n {2}not tried/)

  const none = createResolver().resolve(members, ['forecast', { capability: 'weather', version: '^9' }])
  t.equal(none.selected, null)
  t.same(none.ranked, [])
  t.equal(none.specIndex, -1)
  t.match(formatExplanation(none), /unresolved/)
  t.match(formatExplanation(none), /no provider offers capability forecast/)
  t.match(formatExplanation(none), /version 1\.0\.0 does not satisfy \^9/)
})

t.test('ties: deterministic, in peer order; the tier says how many share the top', async (t) => {
  const members = [member('p3'), member('p1'), member('p2'), tagged('p0', 'slow')]
  const resolver = createResolver()
  const picks = Array.from({ length: 4 }, () => resolver.resolve(members, 'weather').selected?.peerId)
  t.same(picks, ['p0', 'p0', 'p0', 'p0'], 'the same members resolve the same way every time: no hidden turn')
  const ranked = resolver.resolve(members, { capability: 'weather', tags: ['-slow'] })
  t.same(ranked.ranked.map((c) => c.peerId), ['p1', 'p2', 'p3'], 'ties in peer ID order, the selected first')
  t.equal(ranked.tier, 3, 'all three are equally ranked: callers spread calls among them')
  t.same(ranked.explanation.map((x) => x.rank), [1, 2, 3, undefined], 'ranks, then the rejected p0')
  t.equal(createResolver().resolve([...members].reverse(), { capability: 'weather', tags: ['-slow'] }).selected?.peerId, 'p1', 'another resolver, another input order: the same answer')
  const scored = resolver.resolve([tagged('p1', 'fast'), member('p2'), member('p3')], { capability: 'weather', tags: ['+fast'] })
  t.equal(scored.tier, 1, 'a better provider stands alone')
  t.equal(resolver.resolve([], 'weather').tier, 0)
})

t.test('a member whose endpoint is not on its own announced hosts is refused, and explain says why', async (t) => {
  const good = member('p1', { endpoint: 'http://127.0.0.1:8080/mcp', addrs: ['/ip4/127.0.0.1/tcp/4001/p2p/p1'] })
  const foreign = member('p0', { endpoint: 'http://127.0.0.2:8080/mcp', addrs: ['/ip4/127.0.0.1/tcp/4001/p2p/p0'], tools: [{ version: '9.0.0', tags: ['fast'] }] })
  const metadata = member('p2', { endpoint: 'http://169.254.169.254/latest/meta-data', addrs: ['/ip4/169.254.169.254/tcp/80'] })
  const garbage = member('p3', { endpoint: 'not-a-url', addrs: ['/ip4/127.0.0.1/tcp/1'] })
  const r = createResolver().resolve([good, foreign, metadata, garbage], { capability: 'weather', tags: ['+fast'] })
  t.equal(r.selected?.peerId, 'p1', 'the better-scored provider with a foreign endpoint is skipped')
  t.same(r.ranked.map((c) => c.peerId), ['p1'])
  t.same(r.ranked[0].addrs, ['/ip4/127.0.0.1/tcp/4001/p2p/p1'], 'a candidate carries its addrs, so a caller can check it again')
  const rows = Object.fromEntries(r.explanation.map((x) => [x.peerId, x]))
  for (const id of ['p0', 'p2', 'p3']) {
    t.equal(rows[id].verdict, 'rejected', id)
    t.match(rows[id].reasons.join(' '), /^endpoint refused: /, `${id}: the reason names the endpoint`)
  }
  t.match(formatExplanation(r), /rejected .*p0.*endpoint refused/)
})

t.test('liveness, status and role', async (t) => {
  const members = [
    member('p1', { liveness: 'dead' }),
    member('p2', { liveness: 'left' }),
    member('p3', { status: 'draining' }),
    member('p4', { liveness: 'suspect', tools: [{ version: '9.0.0', tags: ['fast'] }] }),
    member('p5', { tools: [{ version: '1.0.0' }] }),
    member('p0', { role: 'bootstrap' }),
    member('p6', { tools: [{ capability: 'forecast' }] }),
  ]
  const resolver = createResolver()
  const r = resolver.resolve(members, { capability: 'weather', tags: ['+fast'] })
  t.equal(r.selected?.peerId, 'p5', 'alive beats suspect even with a higher score and version')
  t.same(r.ranked.map((c) => c.peerId), ['p5', 'p4'])
  t.equal(resolver.resolve(members, { capability: 'weather', tags: ['+fast'] }).selected?.peerId, 'p5', 'suspect is never in the top tier with alive')
  const rows = Object.fromEntries(r.explanation.map((x) => [x.peerId, x]))
  t.same(Object.keys(rows).sort(), ['p1', 'p2', 'p3', 'p4', 'p5'], 'bootstrap and other capabilities are not listed')
  t.same(rows.p1.reasons, ['dead'])
  t.same(rows.p2.reasons, ['left'])
  t.same(rows.p3.reasons, ['draining'])
  t.equal(rows.p4.verdict, 'eligible')
  t.equal(rows.p4.rank, 2)
  t.equal(rows.p4.score, 1)
  t.match(rows.p4.reasons.join(' '), /suspect/)

  const onlySuspect = createResolver().resolve([member('p4', { liveness: 'suspect' }), member('p1', { liveness: 'dead' })], 'weather')
  t.equal(onlySuspect.selected?.peerId, 'p4', 'a suspect provider is used when nothing alive is left')
  t.match(onlySuspect.explanation[0].reasons.join(' '), /no alive provider/)

  const dead = member('p7', { liveness: 'dead', status: 'draining', tools: [{ version: '1.0.0', tags: ['beta'] }] })
  const rejected = createResolver().resolve([dead], { capability: 'weather', version: '^2', tags: ['-beta'] })
  t.same(rejected.explanation[0].reasons, ['dead', 'draining', 'version 1.0.0 does not satisfy ^2', 'has excluded tag beta'], 'every reason is listed')
})

t.test('candidates: endpoint, two tools of one member, deterministic order', async (t) => {
  const twoTools = member('p1', { endpoint: 'https://p1/mcp', tools: [{ name: 'b_tool' }, { name: 'a_tool' }, { name: 'other', capability: 'forecast' }] })
  const r = createResolver().resolve([member('p2'), twoTools], 'weather')
  t.same(r.ranked.map((c) => `${c.peerId}/${c.tool.name}`), ['p1/a_tool', 'p1/b_tool', 'p2/get_weather'])
  t.equal(r.selected?.endpoint, 'https://p1/mcp')
  t.equal(r.selected?.agent, 'agent-p1')
  t.notOk('endpoint' in r.ranked[2], 'no endpoint when the advert has none')

  // Input order does not matter.
  const a = createResolver().resolve([member('b'), member('c'), member('a')], 'weather')
  const b = createResolver().resolve([member('c'), member('a'), member('b')], 'weather')
  t.same(a.ranked.map((c) => c.peerId), b.ranked.map((c) => c.peerId))
  t.same(a.explanation, b.explanation)
})

t.test('explanation rows and text', async (t) => {
  const members = [
    tagged('p1', 'eu', 'fast'),
    tagged('p2', 'eu'),
    tagged('p3', 'us'),
    member('p4', { liveness: 'dead', tools: [{ tags: ['eu'] }] }),
  ]
  const r = createResolver().resolve(members, { capability: 'weather', version: '^1', tags: ['eu', '+fast'] })
  t.same(r.explanation.map((x) => ({ peerId: x.peerId, verdict: x.verdict, rank: x.rank, score: x.score, specIndex: x.specIndex })), [
    { peerId: 'p1', verdict: 'selected', rank: 1, score: 1, specIndex: 0 },
    { peerId: 'p2', verdict: 'eligible', rank: 2, score: 0, specIndex: 0 },
    { peerId: 'p3', verdict: 'rejected', rank: undefined, score: undefined, specIndex: 0 },
    { peerId: 'p4', verdict: 'rejected', rank: undefined, score: undefined, specIndex: 0 },
  ])
  t.same(r.explanation[0].reasons, ['preferred tag fast present (+1)'])
  t.same(r.explanation[1].reasons, ['score 0 below 1'])
  const text = formatExplanation(r)
  t.match(text, 'resolved by spec 0: agent-p1 (p1) tool get_weather 1.0.0')
  t.match(text, 'spec 0: capability weather, version ^1, tags eu +fast')
  t.match(text, /#1 selected .*p1.*preferred tag fast present/)
  t.match(text, /#2 eligible .*p2.*score 0 below 1/)
  t.match(text, /rejected .*p3.*missing required tag eu/)
  t.match(text, /rejected .*p4.*dead/)

  const tie = createResolver().resolve([member('p1'), member('p2')], 'weather')
  t.match(formatExplanation(tie), /round robin among 2/)
  t.match(formatExplanation(tie), /tied with the selected provider/)
})

t.test('invalid specs throw MESH_ERR_RESOLVE_INVALID_SPEC', async (t) => {
  // Match on the error's class and code, never its message.
  const wanted = { name: 'MeshError', code: 'MESH_ERR_RESOLVE_INVALID_SPEC' }
  const resolver = createResolver()
  const bad: unknown[] = [
    '',
    { capability: 'weather', version: 'not a range' },
    { capability: 'weather', tags: ['+'] },
    { capability: 'weather', tags: [['a', '-b']] },
    { capability: 'weather', tags: ['--x'] },
    [],
    42,
    ['weather', { capability: 'weather', tags: ['-'] }],
  ]
  for (const spec of bad) {
    t.throws(() => resolver.resolve([member('p1')], spec as DependencySpec), wanted, JSON.stringify(spec))
  }
  t.throws(() => matchTags(['a'], [['-a']]), wanted)
})

t.test('with a trust domain (mutual TLS), providers without an identity or of another domain are refused, and explain says why', async (t) => {
  const withId = (peerId: string, id: string): Member => {
    const a = advert(peerId)
    return { advert: { ...a, identity: { id, key: 'A'.repeat(43), exp: 1 } }, liveness: 'alive' }
  }
  const members = [member('plain'), withId('ours', 'spiffe://acme.test/agent/agent-ours'), withId('theirs', 'spiffe://partner.test/agent/agent-theirs')]
  const r = createResolver({ trustDomain: 'acme.test' }).resolve(members, 'weather')
  t.equal(r.selected?.peerId, 'ours')
  t.same(r.ranked.map((c) => c.peerId), ['ours'])
  const why = Object.fromEntries(r.explanation.filter((row) => row.verdict === 'rejected').map((row) => [row.peerId, row.reasons]))
  t.same(why, {
    plain: ['no TLS identity in its advert (this caller requires mutual TLS)'],
    theirs: ['its identity spiffe://partner.test/agent/agent-theirs is not of the trust domain acme.test, and the dependency does not opt in to partner.test (trustDomains)'],
  })
  t.same(createResolver().resolve(members, 'weather').ranked.length, 3, 'without one (TLS off), all three')
})

t.test('federation: a partner\'s provider is used only by a dependency that opts in to its domain, and only while the domain is registered', async (t) => {
  const withId = (peerId: string, id: string): Member => ({ advert: { ...advert(peerId), identity: { id, key: 'A'.repeat(43), exp: 1 } }, liveness: 'alive' })
  const members = [withId('theirs', 'spiffe://partner.test/agent/weather')]
  let registered = true
  const resolver = createResolver({ trustDomain: 'acme.test', trusted: (td) => registered && td === 'partner.test' })
  t.equal(resolver.resolve(members, 'weather').selected, null, 'no opt-in: not a candidate, although registered')
  t.equal(resolver.resolve(members, { capability: 'weather', trustDomains: ['partner.test'] }).selected?.peerId, 'theirs', 'opted in and registered: selected')
  t.equal(resolver.resolve(members, { capability: 'weather', trustDomains: ['other.test'] }).selected, null, 'an opt-in to another domain does not count')
  registered = false
  const r = resolver.resolve(members, { capability: 'weather', trustDomains: ['partner.test'] })
  t.equal(r.selected, null, 'opted in, but the entity was revoked: refused')
  t.same(r.explanation[0].reasons, ['its trust domain partner.test is not a registered entity (meshctl entity register)'])
})
