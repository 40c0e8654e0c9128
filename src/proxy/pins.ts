// The pin file on disk, and the live pins of a running gateway or agent (`pin: true`
// dependencies): trust on first use, providers with another definition withheld and recorded,
// approvals made by `meshctl pin approve` picked up while running.
import { randomBytes } from 'node:crypto'
import { readFileSync } from 'node:fs'
import { mkdir, open, readFile, rename, stat, unlink } from 'node:fs/promises'
import { dirname, join } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import { z } from 'zod'
import type { Clock, TimerHandle } from '../clock.ts'
import { MeshError } from '../errors.ts'
import { isAlive } from '../gossip/keys.ts'
import type { Candidate, ResolverPins } from '../topology/resolver.ts'
import { PinFileSchema, definitionOf, emptyPins, notePending, pinFirst, toolDigest, changedFields, canonicalJson } from '../topology/pins.ts'
import type { Pin, PinFile, PinOp, PinProvider, PinVerdict } from '../topology/pins.ts'
import type { ToolAdvert } from '../topology/advert.ts'

/** The gateway's pin file under a home: `<home>/pins/gateway.json`. */
export function gatewayPinsFile (home: string): string {
  return join(home, 'pins', 'gateway.json')
}

/** An agent's pin file (its `pin: true` dependencies) under a home: `<home>/pins/agents/<name>.json`. */
export function agentPinsFile (home: string, agent: string): string {
  return join(home, 'pins', 'agents', `${agent}.json`)
}

/** How long a writer waits for another's lock before it gives up (ms). */
const LOCK_WAIT_MS = 5_000
/** How often a waiting writer tries the lock again (ms). */
const LOCK_RETRY_MS = 20

const fileError = (path: string, what: string, cause?: unknown, details: Record<string, unknown> = {}): MeshError =>
  new MeshError('MESH_ERR_PIN_FILE', `pin file ${path}: ${what}`, { cause, details: { path, ...details } })

/** Parses a pin file's text; a file that is not JSON or fails the schema is MESH_ERR_PIN_FILE, never an empty one. */
function parsePins (text: string, path: string): PinFile {
  let raw: unknown
  try {
    raw = JSON.parse(text)
  } catch (err) {
    throw fileError(path, `not JSON (${(err as Error).message}): fix or restore it; deleting it forgets every pin`, err)
  }
  const parsed = PinFileSchema.safeParse(raw)
  if (!parsed.success) throw fileError(path, `not a pin file: ${z.prettifyError(parsed.error)}; fix or restore it (deleting it forgets every pin)`, undefined, { issues: parsed.error.issues })
  return parsed.data
}

/** A failed read: no file is nothing pinned (undefined), anything else MESH_ERR_PIN_FILE. */
function absent (path: string, err: unknown): undefined {
  if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined
  throw fileError(path, `cannot read it: ${(err as Error).message}`, err)
}

/** Reads the pin file at `path`; none there reads as nothing pinned. Throws MESH_ERR_PIN_FILE. */
export async function readPins (path: string): Promise<PinFile> {
  const text = await readFile(path, 'utf8').catch((err: unknown) => absent(path, err))
  return text === undefined ? emptyPins() : parsePins(text, path)
}

/** `readPins`, synchronously: for an agent's first pinned resolution, which cannot wait. */
function readPinsSync (path: string): PinFile {
  let text: string | undefined
  try {
    text = readFileSync(path, 'utf8')
  } catch (err) {
    text = absent(path, err)
  }
  return text === undefined ? emptyPins() : parsePins(text, path)
}

/**
 * Takes `<path>.lock` (created exclusively, holding our pid), waiting for another writer's; a lock
 * whose process is gone (or an empty one older than the wait) is taken over.
 */
async function lock (path: string, clock: Clock, signal?: AbortSignal): Promise<() => Promise<void>> {
  const file = `${path}.lock`
  const until = clock.now() + LOCK_WAIT_MS
  for (;;) {
    try {
      const fh = await open(file, 'wx', 0o600)
      await fh.writeFile(String(process.pid))
      await fh.close()
      return async () => { await unlink(file).catch(() => {}) }
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw fileError(path, `cannot take its lock ${file}: ${(err as Error).message}`, err)
    }
    const text = await readFile(file, 'utf8').catch(() => undefined)
    const pid = Number(text?.trim())
    const stale = text === undefined
      ? false // released meanwhile: try again at once
      : text.trim() === ''
        ? clock.now() - ((await stat(file).catch(() => undefined))?.mtimeMs ?? clock.now()) > LOCK_WAIT_MS
        : !Number.isInteger(pid) || pid <= 0 || (pid !== process.pid && !isAlive(pid))
    if (stale) { await unlink(file).catch(() => {}); continue }
    if (text === undefined) continue
    if (clock.now() >= until) throw fileError(path, `its lock ${file} is held by process ${text.trim() || '(unknown)'} for more than ${LOCK_WAIT_MS} ms; remove it if no gateway, agent or meshctl pin is running`)
    // A referenced timer: a command waiting for the lock must not exit for want of work (the
    // clock's timers are unreferenced). The clock bounds the wait.
    await sleep(LOCK_RETRY_MS, undefined, signal === undefined ? {} : { signal })
  }
}

/**
 * Applies `op` to the pin file under its lock: read, change, write to a temporary file (mode 0600,
 * synced), rename into place, so readers never see half a file and concurrent writers (a gateway
 * and `meshctl pin approve`) never lose each other's changes. Returns what was written. A corrupt
 * file is not overwritten: MESH_ERR_PIN_FILE. An op may throw to write nothing.
 */
export async function updatePins (path: string, op: PinOp, options: { clock: Clock, signal?: AbortSignal }): Promise<PinFile> {
  await mkdir(dirname(path), { recursive: true, mode: 0o700 }).catch((err: Error) => { throw fileError(path, `cannot create its folder: ${err.message}`, err) })
  const release = await lock(path, options.clock, options.signal)
  try {
    const before = await readPins(path)
    const after = op(before)
    if (after === before) return before
    const tmp = `${path}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`
    try {
      const fh = await open(tmp, 'wx', 0o600)
      try {
        await fh.writeFile(JSON.stringify(after, null, 2) + '\n')
        await fh.sync()
      } finally {
        await fh.close()
      }
      await rename(tmp, path)
    } catch (err) {
      await unlink(tmp).catch(() => {})
      throw fileError(path, `cannot write it: ${(err as Error).message}`, err)
    }
    return after
  } finally {
    await release()
  }
}

/** How a running gateway or agent keeps its pins. */
export interface PinGuardInit {
  /** The pin file; none: pins live in memory only (tests). */
  file?: string
  clock: Clock
  /** How often the file is checked for approvals made by `meshctl pin` (ms, default 1,000). */
  pollMs?: number
  /** The command that approves a change of `capability`, for messages. */
  approveCommand: (capability: string) => string
  /** A provider was withheld for the first time with this definition (for the operator's log). */
  onWithheld?: (verdict: PinVerdict, c: Candidate) => void
  /** Writing or re-reading the file failed (pins keep working in memory meanwhile). */
  onError?: (err: unknown) => void
}

/** The live pins of a gateway or an agent: the resolver's hooks, plus the file kept in step. */
export interface PinGuard extends ResolverPins {
  /** The file, when pins are kept in one. */
  readonly file: string | undefined
  /** Reads the file and starts following it (also done on first use); throws MESH_ERR_PIN_FILE for a corrupt one. */
  load(): Promise<void>
  /** The pin of `capability`, if any. */
  pinned(capability: string): Pin | undefined
  /** Calls `listener` when a pin changes (first use, an approval, a forget): resolutions must be redone. */
  onChange(listener: () => void): () => void
  /** Stops following the file and waits for what is still to be written. Idempotent. */
  stop(): Promise<void>
}

/**
 * Creates the live pins. The state is the file as last read or written with this process's
 * changes not yet written applied over it, so an approval read from the file never undoes a pin
 * being written, nor the reverse. Approvals are noticed by a stat of the file every `pollMs` on
 * the injected clock (and a read only when it changed): it works on every filesystem, including
 * those where `fs.watch` misses renames (network and container mounts), costs one stat a second,
 * and a test's clock drives it. A second is quick enough for a person running `meshctl pin approve`.
 */
export function createPinGuard (init: PinGuardInit): PinGuard {
  const { clock, file } = init
  const pollMs = init.pollMs ?? 1_000
  let base: PinFile = emptyPins()
  let ops: PinOp[] = []
  let state: PinFile = base
  let loaded = false
  let stopped = false
  let timer: TimerHandle | undefined
  let seen = '' // the file's stat when last read
  let writing: Promise<void> | undefined
  let rewrite = false
  const listeners = new Set<() => void>()
  /**
   * Per advertised tool, its verdict against the pin it was judged by (the pin object: a pin read
   * or written anew is judged anew, so a change dropped from the file by a forget is noted again).
   */
  const verdicts = new WeakMap<ToolAdvert, { pin: Pin, verdict: PinVerdict | undefined }>()

  const pinsOf = (f: PinFile): string => canonicalJson(Object.fromEntries(Object.entries(f.pins).map(([c, p]) => [c, p.digest])))
  const derive = (): void => {
    const before = pinsOf(state)
    state = ops.reduce((f, op) => op(f), base)
    if (pinsOf(state) !== before) for (const l of [...listeners]) l()
  }
  const report = (err: unknown): void => { init.onError?.(err) }

  const signature = async (): Promise<string> => {
    const s = await stat(file!).catch(() => undefined)
    return s === undefined ? 'none' : `${s.ino}:${s.size}:${s.mtimeMs}`
  }

  /** Writes the changes made so far; more made meanwhile are written by a next round. */
  const flush = (): void => {
    if (file === undefined) { base = state; ops = []; return }
    if (writing !== undefined) { rewrite = true; return }
    const taken = ops.length
    const all = ops.slice()
    writing = (async () => {
      try {
        // `seen` stays: the next poll reads the file once more, and so cannot miss a write that came just after ours.
        base = await updatePins(file, (f) => all.reduce((g, op) => op(g), f), { clock })
        ops = ops.slice(taken)
        derive()
      } catch (err) {
        report(err) // kept in memory; tried again with the next change or poll
      } finally {
        writing = undefined
        if (rewrite && !stopped) { rewrite = false; if (ops.length > 0) flush() }
      }
    })()
  }

  const change = (op: PinOp): void => {
    ops.push(op)
    derive()
    flush()
  }

  const poll = async (): Promise<void> => {
    if (file === undefined || writing !== undefined) return
    const now = await signature()
    if (now === seen) { if (ops.length > 0) flush(); return }
    try {
      base = await readPins(file)
      seen = now
      derive()
    } catch (err) {
      report(err) // a corrupt file: keep what was read last, never reset
      seen = now
    }
    if (ops.length > 0) flush()
  }

  const follow = (): void => {
    if (stopped || file === undefined || timer !== undefined) return
    const tick = (): void => {
      timer = undefined
      if (stopped) return
      poll().catch(report).finally(() => { if (!stopped && timer === undefined) timer = clock.setTimeout(tick, pollMs) })
    }
    timer = clock.setTimeout(tick, pollMs)
  }

  /** Loads synchronously on first use: an agent's first pinned resolution cannot wait for a read. */
  const ensure = (): void => {
    if (loaded) return
    if (file !== undefined) base = readPinsSync(file)
    loaded = true
    derive()
    follow()
  }

  const providerOf = (c: Candidate): PinProvider => ({ agent: c.agent, peerId: c.peerId, ...(c.identity === undefined ? {} : { spiffeId: c.identity.spiffeId }) })

  return {
    file,
    async load () {
      if (loaded) return
      if (file !== undefined) {
        seen = await signature()
        base = await readPins(file)
      }
      loaded = true
      derive()
      follow()
    },
    pinned (capability) {
      ensure()
      return state.pins[capability]
    },
    check (c) {
      ensure()
      const capability = c.tool.capability
      const pin = state.pins[capability]
      if (pin === undefined) return undefined
      const known = verdicts.get(c.tool)
      if (known !== undefined && known.pin === pin) return known.verdict
      const digest = toolDigest(c.tool)
      let verdict: PinVerdict | undefined
      if (digest !== pin.digest) {
        const definition = definitionOf(c.tool)
        verdict = { capability, pinned: pin.digest, digest, changed: changedFields(pin.definition, definition), ...(c.identity === undefined ? {} : { spiffeId: c.identity.spiffeId }), approve: init.approveCommand(capability) }
        const from = providerOf(c)
        const waiting = state.pending[capability]?.find((p) => p.digest === digest)
        if (waiting?.providers.some((p) => p.peerId === from.peerId && p.spiffeId === from.spiffeId) !== true) {
          change(notePending(capability, definition, from, clock.now()))
          init.onWithheld?.(verdict, c)
        }
      }
      verdicts.set(c.tool, { pin, verdict })
      return verdict
    },
    adopt (c) {
      ensure()
      if (state.pins[c.tool.capability] !== undefined) return false
      change(pinFirst(c.tool.capability, definitionOf(c.tool), providerOf(c), clock.now()))
      return true
    },
    onChange (listener) {
      listeners.add(listener)
      return () => { listeners.delete(listener) }
    },
    async stop () {
      if (stopped) return
      stopped = true
      if (timer !== undefined) clock.clearTimeout(timer)
      timer = undefined
      await writing
      // What is left (a change made while the last write ran) gets one more try.
      if (file !== undefined && ops.length > 0) {
        const all = ops.slice()
        await updatePins(file, (f) => all.reduce((g, op) => op(g), f), { clock }).then(() => { ops = [] }, report)
      }
    },
  }
}
