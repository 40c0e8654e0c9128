import { systemClock } from '../clock.ts'
import { parseGossipOptions } from '../config.ts'
import { isMeshError } from '../errors.ts'
import { agentPinsFile, gatewayPinsFile, readPins, updatePins } from '../proxy/pins.ts'
import { approveChange, canonicalJson, forgetPin, pendingChange, shortDigest } from '../topology/pins.ts'
import type { PendingChange, Pin, PinFile, PinProvider, ToolDefinition } from '../topology/pins.ts'
import { Exit, UsageError, parse } from './args.ts'
import { escapeControls, toJson } from './print.ts'

/** `meshctl pin --help`. */
export const PIN_HELP = `Usage: meshctl pin <list|approve|forget> [capability] [options]

Tool definitions (title, description, input and output schemas, annotations) pinned against
silent changes. The gateway pins the first definition it shows hosts of each capability (trust on
first use); a provider that later advertises another is withheld, and the change waits here until
approved. Agents pin the same way for dependencies declared pin: true. Works on the file alone:
no mesh to join. Running gateways and agents pick up an approval within a second.

  pin list                        what is pinned (digest, first provider, since) and what waits
                                  (provider, its SPIFFE ID, the fields changed, what changed)
  pin approve <capability>        pins the definition that waits (--digest <prefix> when several do)
  pin forget <capability>         drops the pin and what waits: the next definition seen is trusted

  --pins <file>                   the pin file (default <home>/pins/gateway.json: the gateway's)
  --agent <name>                  an agent's pins instead: <home>/pins/agents/<name>.json
  --home <dir>                    default ~/.mcp-mesh (env MCP_MESH_HOME)
  --digest <prefix>               approve: which change, when several wait
  --json                          machine-readable output (list: the file as it is, with its path)

Exit codes: 0 done, 1 failed (an unreadable or corrupt file: MESH_ERR_PIN_FILE), 2 usage (also:
several changes wait and no --digest), 4 nothing waits for that capability (or nothing is pinned).`

const options = {
  pins: { type: 'string' },
  agent: { type: 'string' },
  home: { type: 'string' },
  digest: { type: 'string' },
  json: { type: 'boolean' },
  help: { type: 'boolean', short: 'h' },
} as const

/** The home as agents read it (MCP_MESH_HOME, else ~/.mcp-mesh). */
function homeOf (home: string | undefined): string {
  return parseGossipOptions({ name: 'meshctl', ...(home === undefined ? {} : { home }) }).home
}

/** The pin file a command means: `--pins`, an agent's (`--agent`), or the gateway's under the home. */
export function pinsFileOf (o: { pins?: string, agent?: string, home?: string }): string {
  if (o.pins !== undefined && o.agent !== undefined) throw new UsageError('--pins and --agent exclude each other')
  if (o.pins !== undefined) return o.pins
  return o.agent === undefined ? gatewayPinsFile(homeOf(o.home)) : agentPinsFile(homeOf(o.home), o.agent)
}

/** The command that approves a change of `capability` in `file` (no --pins for the default gateway file). */
export function approveCommand (capability: string, file: string): string {
  return `meshctl pin approve ${capability}${file === gatewayPinsFile(homeOf(undefined)) ? '' : ` --pins ${file}`}`
}

/** `meshctl pin`: list, approve and forget pinned tool definitions. */
export async function pin (argv: string[]): Promise<number> {
  const { values, positionals } = parse(argv, options)
  if (values.help === true) { console.log(PIN_HELP); return Exit.ok }
  const [sub, capability] = positionals
  const file = pinsFileOf(values)
  if (sub === 'list') {
    const pins = await readPins(file)
    console.log(values.json === true ? toJson({ file, ...pins }) : formatPins(file, pins))
    return Exit.ok
  }
  if (sub !== 'approve' && sub !== 'forget') throw new UsageError(sub === undefined ? 'pin needs a subcommand: list, approve or forget' : `unknown pin subcommand "${sub}"`)
  if (capability === undefined) throw new UsageError(`pin ${sub} needs a capability (meshctl pin list shows them)`)
  if (values.digest !== undefined && sub !== 'approve') throw new UsageError('--digest goes with approve')
  try {
    // Checked on what is there first, so a mistyped capability creates no folder nor lock; checked again under the lock.
    const now = await readPins(file)
    if (sub === 'forget') forgetPin(capability)(now)
    else pendingChange(now, capability, values.digest)
    if (sub === 'forget') {
      await updatePins(file, forgetPin(capability), { clock: systemClock })
      console.log(values.json === true ? toJson({ capability, forgotten: true }) : `forgot ${escapeControls(capability)}: the next definition seen is trusted on first use`)
      return Exit.ok
    }
    const after = await updatePins(file, approveChange(capability, values.digest, systemClock.now()), { clock: systemClock })
    const p = after.pins[capability]
    console.log(values.json === true
      ? toJson({ capability, pin: p })
      : `approved ${escapeControls(capability)}: sha256 ${shortDigest(p.digest)} from ${who(p.from)} is pinned; running gateways and agents show it within a second`)
    return Exit.ok
  } catch (err) {
    // Several changes wait: the user has to say which.
    if (isMeshError(err, 'MESH_ERR_PIN_NOT_PENDING') && (err.details?.waiting as string[] | undefined ?? []).length > 1 && values.digest === undefined) throw new UsageError(err.message)
    throw err
  }
}

/** A provider as `list` names it. */
function who (p: PinProvider): string {
  return escapeControls(`${p.agent} (${p.spiffeId ?? `peer ${p.peerId}`})`)
}

/** `pin list` for people: pins, then what waits with what changed. */
function formatPins (file: string, f: PinFile): string {
  const lines = [`pins in ${escapeControls(file)}`]
  const pinned = Object.entries(f.pins).sort(([a], [b]) => a < b ? -1 : 1)
  lines.push(pinned.length === 0 ? 'nothing pinned yet' : 'pinned:')
  const width = Math.max(12, ...pinned.map(([c]) => c.length), ...Object.keys(f.pending).map((c) => c.length))
  for (const [capability, p] of pinned) {
    lines.push(`  ${escapeControls(capability.padEnd(width))} sha256 ${shortDigest(p.digest)}  ${p.how === 'approved' ? 'approved' : 'first seen'} from ${who(p.from)} since ${p.since}`)
  }
  const waiting = Object.entries(f.pending).filter(([, cs]) => cs.length > 0).sort(([a], [b]) => a < b ? -1 : 1)
  if (waiting.length === 0) {
    lines.push('no change waits')
    return lines.join('\n')
  }
  lines.push('waiting for approval (meshctl pin approve <capability>):')
  for (const [capability, changes] of waiting) {
    for (const c of changes) lines.push(...formatChange(capability, c, f.pins[capability], width))
  }
  return lines.join('\n')
}

/** Lines of one change shown per field, at most this many. */
const MAX_DIFF_LINES = 12
/** Characters of one value in a diff line. */
const MAX_VALUE = 100

function formatChange (capability: string, c: PendingChange, pin: Pin | undefined, width: number): string[] {
  const by = c.providers.map(who).join(', ')
  const lines = [`  ${escapeControls(capability.padEnd(width))} sha256 ${shortDigest(c.digest)}  ${c.changed.join(', ')} changed, advertised by ${by}, seen ${c.seen}`]
  const diff = pin === undefined ? [] : definitionDiff(pin.definition, c.definition)
  for (const d of diff.slice(0, MAX_DIFF_LINES)) lines.push(`      ${d}`)
  if (diff.length > MAX_DIFF_LINES) lines.push(`      ... ${diff.length - MAX_DIFF_LINES} more (meshctl pin list --json has both definitions)`)
  return lines
}

/** A value for one diff line: canonical JSON, cut short, escaped. */
function shown (v: unknown): string {
  const s = canonicalJson(v)
  return escapeControls(s.length > MAX_VALUE ? `${s.slice(0, MAX_VALUE)}...` : s)
}

/** Leaves of a definition by path (`inputSchema.properties.city.type`), as canonical JSON. */
function leaves (v: unknown, path: string, out: Map<string, unknown>): Map<string, unknown> {
  if (v !== null && typeof v === 'object' && !Array.isArray(v) && Object.keys(v).length > 0) {
    for (const [k, x] of Object.entries(v)) leaves(x, path === '' ? k : `${path}.${k}`, out)
  } else if (v !== undefined) out.set(path, v)
  return out
}

/** What differs between two definitions, one line per path: `- path: old`, `+ path: new`, `~ path: old -> new`. */
export function definitionDiff (a: ToolDefinition, b: ToolDefinition): string[] {
  const before = leaves(a, '', new Map())
  const after = leaves(b, '', new Map())
  const paths = [...new Set([...before.keys(), ...after.keys()])].sort()
  const out: string[] = []
  for (const p of paths) {
    const x = before.get(p)
    const y = after.get(p)
    if (x === undefined) out.push(`+ ${escapeControls(p)}: ${shown(y)}`)
    else if (y === undefined) out.push(`- ${escapeControls(p)}: ${shown(x)}`)
    else if (canonicalJson(x) !== canonicalJson(y)) out.push(`~ ${escapeControls(p)}: ${shown(x)} -> ${shown(y)}`)
  }
  return out
}
