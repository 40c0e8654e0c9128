import semver from 'semver'
import { MeshError } from '../errors.ts'
import { parseSpiffeId } from '../identity/spiffe-id.ts'
import { describeSpec, normalizeDependency } from './dependency.ts'
import type { DependencySpec, ResolutionSpec } from './dependency.ts'
import { endpointProblem } from './endpoint.ts'
import type { Liveness, Member, ToolAdvert } from './advert.ts'
import type { PinVerdict } from './pins.ts'

/** A tag expression as found in a spec: `tag`, `+tag`, `-tag`, or a nested OR group. */
export type TagExpression = NonNullable<ResolutionSpec['tags']>

/** One tool of one member that satisfies a spec. */
export interface Candidate {
  peerId: string
  /** The agent's name (from its advert). */
  agent: string
  tool: ToolAdvert
  liveness: Liveness
  /** Preferred tags present (+1 each). */
  score: number
  /** The tool's version. */
  version: string
  endpoint?: string
  /** The endpoint's TLS identity its advert endorses (SPIFFE ID and key hash). */
  identity?: { spiffeId: string, keyHash: string }
  /** The member's libp2p addresses: the hosts its endpoint may name (see `endpointProblem`). */
  addrs: readonly string[]
  /** The member's zone, when it says (callers prefer their own). */
  zone?: string
}

/** What the resolver decided about one candidate tool. */
export type Verdict = 'selected' | 'eligible' | 'rejected'

/** One line of `meshctl explain`: a tool of a member, judged against one spec. */
export interface ExplainRow {
  peerId: string
  agent: string
  /** The tool's name. */
  tool: string
  version: string
  liveness: Liveness
  verdict: Verdict
  /** Why it was rejected, or what set its rank. */
  reasons: string[]
  /** 1-based position in `Resolution.ranked` (eligible and selected rows of the winning spec). */
  rank?: number
  score?: number
  /** Which spec of the ordered list this row was judged against. */
  specIndex: number
  /** Withheld from a pinned spec: its tool definition differs from the pinned one. */
  pin?: PinVerdict
}

/** The outcome of resolving one dependency. */
export interface Resolution {
  /** The normalized, ordered list of specs. */
  spec: ResolutionSpec[]
  selected: Candidate | null
  /** Every eligible candidate of the winning spec in rank order, `selected` first. */
  ranked: Candidate[]
  /**
   * How many candidates at the head of `ranked` are equally ranked (0 when none resolved).
   * The resolver always lists them in peer ID order; callers spread calls among them.
   */
  tier: number
  /** Which spec of the ordered list resolved, -1 if none. */
  specIndex: number
  /** Rows for every spec tried, in order. */
  explanation: ExplainRow[]
}

/**
 * Picks providers for dependencies from a set of members. Pure and deterministic: no network,
 * no clock, no state, so every replica that holds the same members reaches the same resolution.
 * Spreading load among equally ranked providers is the caller's business (`Resolution.tier`).
 */
export interface Resolver {
  /**
   * Resolves `dependency` against `members`.
   * Throws MeshError `MESH_ERR_RESOLVE_INVALID_SPEC` for a malformed spec.
   */
  resolve(members: Iterable<Member>, dependency: DependencySpec): Resolution
}

/**
 * The pins a resolver consults for specs with `pin: true` (the state lives with its owner: the
 * resolver itself stays stateless).
 */
export interface ResolverPins {
  /** Why `c` is withheld: its tool definition differs from its capability's pin; undefined when it matches or nothing is pinned. */
  check(c: Candidate): PinVerdict | undefined
  /** `c` was selected: pins its definition when its capability has no pin yet (trust on first use); true when it did. */
  adopt(c: Candidate): boolean
}

/**
 * Creates a resolver (stateless: one can serve every caller). `trustDomain`: the caller calls
 * with mutual TLS, so a provider whose advert endorses no TLS identity, or one of another trust
 * domain, is refused here (and `explain` says why) rather than tried and refused at the socket.
 * `pins`: a spec with `pin: true` takes only providers whose definition is pinned; when nothing is
 * pinned, the one it selects is, and the spec is judged again.
 */
export function createResolver (options: { trustDomain?: string, trusted?: (trustDomain: string) => boolean, revoked?: (spiffeId: string, keyHash: string) => boolean, pins?: ResolverPins } = {}): Resolver {
  const td = options.trustDomain === undefined ? undefined : { own: options.trustDomain, trusted: options.trusted ?? (() => false), revoked: options.revoked ?? (() => false) }
  const pins = options.pins
  return {
    resolve (members, dependency) {
      const specs = normalizeDependency(dependency)
      // Check every spec up front, so a bad fallback fails even when an earlier spec resolves.
      for (const s of specs) validateTags(s.tags ?? [])
      const all = [...members].filter((m) => m.advert.role !== 'bootstrap')
      const explanation: ExplainRow[] = []

      for (let i = 0; i < specs.length; i++) {
        const guard = specs[i].pin === true ? pins : undefined
        let { eligible, rejected } = judge(all, specs[i], i, td, guard)
        if (eligible.length === 0) {
          explanation.push(...rejected)
          continue
        }
        let rows = new Map(eligible.map((e) => [e.candidate, e.row]))
        let sorted = [...rows.keys()].sort(compareCandidates)
        // First sight of a pinned capability: the selected definition is pinned, the others judged by it.
        if (guard?.adopt(sorted[0]) === true) {
          ({ eligible, rejected } = judge(all, specs[i], i, td, guard))
          rows = new Map(eligible.map((e) => [e.candidate, e.row]))
          sorted = [...rows.keys()].sort(compareCandidates)
        }
        const tier = sorted.filter((c) => compareRank(c, sorted[0]) === 0).length
        const selected = sorted[0]
        explanation.push(...sorted.map((c, r) => rankedRow(c, rows.get(c)!, r, selected, tier)), ...rejected)
        return { spec: specs, selected, ranked: sorted, tier, specIndex: i, explanation }
      }
      return { spec: specs, selected: null, ranked: [], tier: 0, specIndex: -1, explanation }
    },
  }
}

interface Judged { candidate: Candidate, row: ExplainRow }

/** The trust domain of a SPIFFE ID (`spiffe://<domain>/...`). */
function domainOf (id: string): string {
  return parseSpiffeId(id).trustDomain // the advert schema let only SPIFFE IDs through
}

/** Judges every tool of the spec's capability; rejected rows come out sorted by peer and tool. */
function judge (members: Member[], spec: ResolutionSpec, specIndex: number, trust: { own: string, trusted: (td: string) => boolean, revoked: (id: string, key: string) => boolean } | undefined, pins: ResolverPins | undefined): { eligible: Judged[], rejected: ExplainRow[] } {
  const eligible: Judged[] = []
  const rejected: ExplainRow[] = []
  for (const { advert, liveness } of members) {
    for (const tool of advert.tools) {
      if (tool.capability !== spec.capability) continue
      const reasons: string[] = []
      if (liveness === 'dead' || liveness === 'left') reasons.push(liveness)
      if (advert.status === 'draining') reasons.push('draining')
      // A member that names a foreign endpoint is never called (SSRF): say why it is skipped.
      const problem = advert.endpoint === undefined ? undefined : endpointProblem(advert.endpoint, advert.addrs)
      if (problem !== undefined) reasons.push(`endpoint refused: ${problem}`)
      if (trust !== undefined) {
        if (advert.identity === undefined) reasons.push('no TLS identity in its advert (this caller requires mutual TLS)')
        else if (trust.revoked(advert.identity.id, advert.identity.key)) reasons.push(`its identity ${advert.identity.id} is revoked`)
        else {
          const theirs = domainOf(advert.identity.id)
          if (theirs !== trust.own) {
            if (spec.trustDomains?.includes(theirs) !== true) reasons.push(`its identity ${advert.identity.id} is not of the trust domain ${trust.own}, and the dependency does not opt in to ${theirs} (trustDomains)`)
            else if (!trust.trusted(theirs)) reasons.push(`its trust domain ${theirs} is not a registered entity (meshctl entity register)`)
          }
        }
      }
      if (semver.valid(tool.version) === null) reasons.push(`version ${tool.version} is not semver`)
      else if (spec.version !== undefined && !semver.satisfies(tool.version, spec.version, { includePrerelease: false })) {
        reasons.push(`version ${tool.version} does not satisfy ${spec.version}`)
      }
      if (spec.streaming === true && tool.streaming !== true) reasons.push('its tool does not stream partial results (the dependency is streaming: true)')
      const tags = matchTags(tool.tags, spec.tags ?? [])
      const row: ExplainRow = { peerId: advert.peerId, agent: advert.name, tool: tool.name, version: tool.version, liveness, verdict: 'rejected', reasons, specIndex }
      if (!tags.ok || reasons.length > 0) {
        if (!tags.ok) reasons.push(...tags.reasons)
        rejected.push(row)
        continue
      }
      reasons.push(...tags.reasons)
      const candidate: Candidate = { peerId: advert.peerId, agent: advert.name, tool, liveness, score: tags.score, version: tool.version, addrs: advert.addrs }
      if (advert.endpoint !== undefined) candidate.endpoint = advert.endpoint
      if (advert.identity !== undefined) candidate.identity = { spiffeId: advert.identity.id, keyHash: advert.identity.key }
      if (advert.zone !== undefined) candidate.zone = advert.zone
      const pin = pins?.check(candidate)
      if (pin !== undefined) {
        // Last, so only a provider that qualifies in every other way is recorded as a change waiting.
        reasons.length = 0
        reasons.push(`its tool definition differs from the one pinned for ${pin.capability} (${pin.changed.join(', ')} changed): withheld until ${pin.approve}`)
        rejected.push({ ...row, pin })
        continue
      }
      eligible.push({ candidate, row })
    }
  }
  rejected.sort((a, b) => compareIds(a.peerId, a.tool, b.peerId, b.tool))
  return { eligible, rejected }
}

/** Fills in rank, score and verdict of an eligible row, saying why it sits where it does. */
function rankedRow (candidate: Candidate, row: ExplainRow, index: number, selected: Candidate, tierSize: number): ExplainRow {
  const reasons = [...row.reasons]
  if (candidate === selected) {
    if (candidate.liveness === 'suspect') reasons.push('suspect, but no alive provider is eligible')
    if (tierSize > 1) reasons.push(`round robin among ${tierSize} equally ranked providers (calls rotate; listed in peer ID order)`)
  } else {
    reasons.push(belowSelected(candidate, selected))
  }
  return { ...row, verdict: candidate === selected ? 'selected' : 'eligible', reasons, rank: index + 1, score: candidate.score }
}

/** The first ranking criterion on which `c` loses to `selected`. */
function belowSelected (c: Candidate, selected: Candidate): string {
  if (c.liveness !== selected.liveness) return `${c.liveness} while the selected provider is ${selected.liveness}`
  if (c.score !== selected.score) return `score ${c.score} below ${selected.score}`
  if (!semver.eq(c.version, selected.version)) return `version ${c.version} below ${selected.version}`
  return 'tied with the selected provider: calls rotate among them by round robin'
}

/** Alive before suspect, higher score, higher version. 0 means "same tier": round robin decides. */
function compareRank (a: Candidate, b: Candidate): number {
  return livenessOrder(a.liveness) - livenessOrder(b.liveness) ||
    b.score - a.score ||
    semver.rcompare(a.version, b.version)
}

/** Full rank order: ties broken by peer ID then tool name, so every replica agrees. */
function compareCandidates (a: Candidate, b: Candidate): number {
  return compareRank(a, b) || compareIds(a.peerId, a.tool.name, b.peerId, b.tool.name)
}

function livenessOrder (l: Liveness): number {
  return l === 'alive' ? 0 : 1
}

// Code-unit order, not localeCompare: the result must not depend on the machine's locale.
function compareIds (peerA: string, toolA: string, peerB: string, toolB: string): number {
  if (peerA !== peerB) return peerA < peerB ? -1 : 1
  if (toolA !== toolB) return toolA < toolB ? -1 : 1
  return 0
}

/** Splits `+tag` / `-tag` / `tag` into its operator and name. */
function parseTag (raw: string): { op: '+' | '-' | '', tag: string } {
  const op = raw[0] === '+' || raw[0] === '-' ? raw[0] : ''
  return { op, tag: op === '' ? raw : raw.slice(1) }
}

/** Rejects what the schema lets through but has no meaning: a bare `+`/`-`, `-` inside an OR group. */
function validateTags (expr: TagExpression): void {
  const invalid = (msg: string): never => {
    throw new MeshError('MESH_ERR_RESOLVE_INVALID_SPEC', `invalid tag expression: ${msg}`, { details: { tags: expr } })
  }
  for (const item of expr) {
    for (const raw of typeof item === 'string' ? [item] : item) {
      const { op, tag } = parseTag(raw)
      if (tag === '' || /\s/.test(tag) || tag[0] === '+' || tag[0] === '-') invalid(`"${raw}" is not a tag`)
      if (typeof item !== 'string' && op === '-') invalid(`"${raw}": an OR group cannot hold an excluded tag`)
    }
  }
}

/**
 * Matches a tool's tags against a tag expression.
 * - `tag`: required, else the tool is rejected.
 * - `+tag`: preferred, +1 score when present, nothing when missing.
 * - `-tag`: excluded, the tool is rejected when it has it.
 * - `[a, b]`: OR group, at least one must be present. An element written `+a` counts as `a` for
 *   presence and also scores +1 when present, so `[+fast, cheap]` means "either, fast preferred".
 *   `-` inside a group has no clear meaning and is refused (MESH_ERR_RESOLVE_INVALID_SPEC).
 * `reasons` lists the failures when `ok` is false, else the preferred tags that scored.
 */
export function matchTags (toolTags: readonly string[], expr: TagExpression): { ok: boolean, score: number, reasons: string[] } {
  validateTags(expr)
  const have = new Set(toolTags)
  const failures: string[] = []
  const scored: string[] = []
  const prefer = (tag: string): void => {
    if (have.has(tag)) scored.push(`preferred tag ${tag} present (+1)`)
  }
  for (const item of expr) {
    if (typeof item === 'string') {
      const { op, tag } = parseTag(item)
      if (op === '+') prefer(tag)
      else if (op === '-' && have.has(tag)) failures.push(`has excluded tag ${tag}`)
      else if (op === '' && !have.has(tag)) failures.push(`missing required tag ${tag}`)
    } else {
      const parts = item.map(parseTag)
      if (!parts.some((p) => have.has(p.tag))) failures.push(`none of [${item.join(', ')}] present`)
      for (const p of parts) if (p.op === '+') prefer(p.tag)
    }
  }
  const ok = failures.length === 0
  return { ok, score: scored.length, reasons: ok ? scored : failures }
}

/** Renders a resolution as text for `meshctl explain`: the outcome, then each spec tried with its rows. */
export function formatExplanation (r: Resolution): string {
  const lines: string[] = []
  const s = r.selected
  lines.push(s === null
    ? `unresolved: no spec of ${r.spec.length} has an eligible provider`
    : `resolved by spec ${r.specIndex}: ${s.agent} (${s.peerId}) tool ${s.tool.name} ${s.version}`)
  r.spec.forEach((spec, i) => {
    lines.push(`spec ${i}: ${describeSpec(spec)}`)
    if (r.specIndex !== -1 && i > r.specIndex) {
      lines.push('  not tried: an earlier spec resolved')
      return
    }
    const rows = r.explanation.filter((row) => row.specIndex === i)
    if (rows.length === 0) lines.push(`  no provider offers capability ${spec.capability}`)
    for (const row of rows) {
      const rank = row.rank === undefined ? '  ' : `#${row.rank}`
      const score = row.score === undefined ? '' : ` score ${row.score}`
      const why = row.reasons.length === 0 ? '' : `: ${row.reasons.join('; ')}`
      lines.push(`  ${rank} ${row.verdict.padEnd(8)} ${row.agent} (${row.peerId}) ${row.tool} ${row.version} ${row.liveness}${score}${why}`)
    }
  })
  return lines.join('\n')
}
