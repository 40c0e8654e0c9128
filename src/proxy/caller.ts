import { MeshError } from '../errors.ts'
import type { Clock } from '../clock.ts'
import type { GossipNode } from '../gossip/gossip-node.ts'
import { createResolver } from '../topology/resolver.ts'
import type { Candidate, Resolution, ResolverPins } from '../topology/resolver.ts'
import type { ResolutionSpec } from '../topology/dependency.ts'
import type { ReplicaChange } from '../topology/replica.ts'
import { endpointProblem } from '../topology/endpoint.ts'
import { parseSpiffeId } from '../identity/spiffe-id.ts'
import { originOf } from './mcp-client.ts'
import type { McpHttpClient, RawCallOptions } from './mcp-client.ts'
import type { Balance, MeshToolContext, RetryPolicy } from './mesh-tool.ts'
import { Breakers } from './breaker.ts'
import type { CallEvents } from '../telemetry/events.ts'
import type { Tracer } from '@opentelemetry/api'
import { headerFilter } from './headers.ts'
import type { HeaderFilter } from './headers.ts'
import type { BreakerPolicy } from './breaker.ts'
import { followable } from './deadline.ts'

/** What a caller (an agent, or `meshctl call`) is built from. */
export interface CallerInit {
  /** The gossip member whose replica resolves dependencies (undefined until started). */
  gossip: () => GossipNode | undefined
  client: McpHttpClient
  clock: Clock
  settleUntil: () => number
  callTimeoutMs: number
  /** Default retries of calls through injected tools (none when absent). */
  retry?: RetryPolicy
  /** How calls spread among equally ranked providers, unless a dependency says (round robin when absent). */
  balance?: Balance
  /** This agent's zone: equally ranked providers of the same zone (and trust domain) are called first. */
  zone?: string
  /** Default hedging of read-only and idempotent calls (none when absent). */
  hedgeAfterMs?: number
  /** Circuit breaking and the concurrency cap per provider (Envoy's defaults when absent). */
  breaker?: BreakerPolicy
  /** Header propagation: the node's list, and per partner domain what its agents may get. */
  propagate?: { headers: string[], partners: Record<string, string[]> }
  /** Aborts every call in flight (the node is stopping). */
  stopSignal: AbortSignal
  /** Observers of calls as they end (metrics). */
  events?: CallEvents
  /** Traces calls (none when absent). */
  tracer?: Tracer
  /** Mutual TLS: providers whose advert endorses no TLS identity of this trust domain are not called. */
  trustDomain?: string
  /** Federation: whether a partner trust domain is registered (dependencies may opt in to it). */
  trusted?: (trustDomain: string) => boolean
  /** Revoked identities: their providers are not called. */
  revoked?: (spiffeId: string, keyHash: string) => boolean
  /** Subscribes to changes of the trusted domains (a registration or a revoke): resolutions are redone. */
  onTrustChange?: (listener: () => void) => void
  /** Runs a tool of this agent in process (its parts to `onPart`); observers have none. */
  callLocal?: MeshToolContext['callLocal']
  /** Pinned definitions, for dependencies with `pin: true` (see `createPinGuard`); a change of a pin redoes resolutions. */
  pins?: ResolverPins & { onChange: (listener: () => void) => () => void }
}

/** Providers that refused a connection are tried last for this long. */
const AVOID_MS = 10_000
/**
 * Dependencies with a cached resolution and a round-robin turn. Declared dependencies are few;
 * `node.call(spec)` with ever new specs must not grow the maps without end.
 */
const MAX_KEYS = 1_000

/**
 * The context MeshTools call through. Resolution against the local replica is deterministic
 * and cached until the topology changes (resolving is a scan of every member; a call should not
 * pay it). Spreading load is this caller's business: round robin among the equally ranked, and
 * providers that refused a call tried last. Remote calls go through the pooled client, which
 * forgets the pool of a member that left or moved.
 */
export function createCaller (init: CallerInit): MeshToolContext {
  const resolver = createResolver({
    ...(init.trustDomain === undefined ? {} : { trustDomain: init.trustDomain, ...(init.trusted === undefined ? {} : { trusted: init.trusted }), ...(init.revoked === undefined ? {} : { revoked: init.revoked }) }),
    ...(init.pins === undefined ? {} : { pins: init.pins }),
  })
  const cache = new Map<string, Resolution>()
  const turns = new Map<string, number>()
  /** Peer ID -> until when it is tried last (it refused a call). */
  const avoid = new Map<string, number>()
  /** Peer ID -> the endpoint (and TLS key) this caller called it at: the pools it holds on the member's behalf. */
  const called = new Map<string, { endpoint: string, key?: string }>()
  /** Endpoint checks, per candidate (a candidate lives as long as its cached resolution). */
  const checked = new WeakMap<Candidate, string | null>()
  /** How far each candidate is: 0 same zone and trust domain, 1 same domain, 2 same zone, 3 neither. */
  const distances = new WeakMap<Candidate, number>()
  const local = init.zone !== undefined || init.trustDomain !== undefined
  const distance = (c: Candidate): number => {
    let d = distances.get(c)
    if (d === undefined) {
      const domain = c.identity === undefined ? undefined : parseSpiffeId(c.identity.spiffeId).trustDomain
      d = (init.trustDomain === undefined || domain === init.trustDomain ? 0 : 2) + (init.zone === undefined || c.zone === init.zone ? 0 : 1)
      distances.set(c, d)
    }
    return d
  }
  let watched: GossipNode | undefined
  const breakers = new Breakers(init.clock, init.breaker)
  const partnerFilters = new Map<string, HeaderFilter>()
  /** Peer ID -> what to call when the mesh gives up on it: one entry per call in flight to it. */
  const inFlight = new Map<string, Set<(why: string) => void>>()
  init.onTrustChange?.(() => { cache.clear() })
  init.pins?.onChange(() => { cache.clear() })

  const gossip = (): GossipNode => {
    const g = init.gossip()
    if (g === undefined) throw new MeshError('MESH_ERR_NOT_STARTED', 'the node has not been started: await node.start() before calling dependencies')
    if (watched !== g) {
      watched = g
      cache.clear()
      g.replica.onChange((c) => {
        cache.clear()
        if (c.after !== 'alive' && c.after !== c.before) lose(c)
        release(c)
      })
    }
    return g
  }

  /** Tells the calls in flight to a member that the mesh marked suspect, dead or gone. */
  const lose = (c: ReplicaChange): void => {
    const calls = inFlight.get(c.peerId)
    if (calls === undefined) return
    const why = c.after === 'left' ? 'gone (it left the mesh)' : `declared ${c.after} by the mesh`
    for (const cb of [...calls]) cb(why)
  }

  /** Closes what this caller holds for a member that left, died, or moved to another endpoint. */
  const release = (c: ReplicaChange): void => {
    const gone = c.after === 'dead' || c.after === 'left'
    if (gone) {
      avoid.delete(c.peerId)
      breakers.forget(c.peerId)
    }
    const held = called.get(c.peerId)
    if (held === undefined || (!gone && c.advert.endpoint === held.endpoint && c.advert.identity?.key === held.key)) return
    called.delete(c.peerId)
    // Another member at the same origin (two agents behind one proxy) keeps the pool.
    const origin = originOf(held.endpoint)
    for (const other of called.values()) if (originOf(other.endpoint) === origin) return
    // A renewal (same endpoint, new key): calls in flight finish on the old connections.
    init.client.forget(held.endpoint, !gone && c.advert.endpoint === held.endpoint)
  }

  const problemOf = (c: Candidate): string | undefined => {
    let p = checked.get(c)
    if (p === undefined) {
      p = c.endpoint === undefined ? 'it advertises no MCP endpoint' : endpointProblem(c.endpoint, c.addrs) ?? null
      checked.set(c, p)
    }
    return p ?? undefined
  }

  /** Checks `c` once more and sends the call (throws at once when it may not be called). */
  const sendTo: MeshToolContext['callRemote'] = (c, args, o) => {
    // The last gate before a socket opens: the resolver already refuses such providers.
    const problem = problemOf(c)
    if (problem !== undefined || c.endpoint === undefined) {
      throw new MeshError('MESH_ERR_CALL_UNREACHABLE', `${c.agent} was not called: ${problem ?? 'no endpoint'}`, { details: { notSent: true, refused: problem } })
    }
    if (init.trustDomain !== undefined && c.identity === undefined) {
      throw new MeshError('MESH_ERR_CALL_UNTRUSTED', `${c.agent} was not called: its advert endorses no TLS identity, and this agent calls only with mutual TLS`, { details: { notSent: true } })
    }
    const held = called.get(c.peerId)
    if (held?.endpoint !== c.endpoint || held.key !== c.identity?.keyHash) called.set(c.peerId, { endpoint: c.endpoint, ...(c.identity === undefined ? {} : { key: c.identity.keyHash }) })
    // One object, its fields set only when given (spreads would make one per field).
    const options: RawCallOptions = { signal: o.signal } // already linked to the stop signal by the MeshTool
    if (c.identity !== undefined) options.peer = c.identity
    if (o.headers !== undefined) options.headers = o.headers
    if (o.onProgress !== undefined) options.onProgress = o.onProgress
    if (o.onPart !== undefined) options.onPart = o.onPart
    if (o.onLog !== undefined) options.onLog = o.onLog
    if (o.onRequest !== undefined) options.onRequest = o.onRequest
    return init.client.callTool(c.endpoint, c.tool.name, args, options)
  }

  return {
    clock: init.clock,
    selfPeerId: () => init.gossip()?.peerId ?? '',
    settleUntil: init.settleUntil,
    callTimeoutMs: init.callTimeoutMs,
    retry: init.retry ?? { retries: 0, delayMs: 100, maxDelayMs: 2_000 },
    ...(init.hedgeAfterMs === undefined ? {} : { hedgeAfterMs: init.hedgeAfterMs }),
    breakers,
    balance: init.balance ?? 'round-robin',
    headers: {
      filter: headerFilter(init.propagate?.headers ?? []),
      partner: (td) => {
        let f = partnerFilters.get(td)
        if (f === undefined) partnerFilters.set(td, f = headerFilter(init.propagate?.partners[td] ?? []))
        return f
      },
      ...(init.trustDomain === undefined ? {} : { trustDomain: init.trustDomain }),
    },
    // Every call in flight follows it: through a list, not an `abort` listener per call.
    stopSignal: followable(init.stopSignal),
    ...(init.events === undefined ? {} : { events: init.events }),
    ...(init.tracer === undefined ? {} : { tracer: init.tracer }),
    stats: {
      ok: 0,
      failed: {},
      failovers: 0,
      retries: 0,
      hedges: 0,
      hedgesWon: 0,
      get pools () { return init.client.size },
      get avoided () { return avoid.size },
    },

    resolve (specs: ResolutionSpec[], key: string): Resolution {
      const g = gossip()
      let resolution = cache.get(key)
      if (resolution === undefined) {
        resolution = resolver.resolve(g.replica.members(), specs)
        if (cache.size >= MAX_KEYS) cache.clear()
        cache.set(key, resolution)
      }
      return resolution
    },

    order (resolution: Resolution, key: string, balance: Balance = 'round-robin', locality = true): Candidate[] {
      const { ranked, tier } = resolution
      let order = ranked
      if (tier > 1) {
        // Rotate the top tier, so each provider of it takes its turn first and the failover
        // order after it stays fair too; the nearest providers (zone, trust domain) come first,
        // each group rotated on its own, so the near ones share the load evenly.
        const turn = nextTurn(turns, key)
        const top = ranked.slice(0, tier)
        const groups = locality && local ? nearestFirst(top, distance) : [top]
        const rotated = groups.map((g) => { const pick = turn % g.length; return [...g.slice(pick), ...g.slice(0, pick)] })
        order = [...balanced(rotated[0], balance, breakers), ...rotated.slice(1).flat(), ...ranked.slice(tier)]
      }
      if (avoid.size === 0) return order
      const now = init.clock.now()
      const fresh: Candidate[] = []
      const avoided: Candidate[] = []
      for (const c of order) {
        const until = avoid.get(c.peerId)
        if (until !== undefined && until <= now) avoid.delete(c.peerId)
        ;(until !== undefined && until > now ? avoided : fresh).push(c)
      }
      return [...fresh, ...avoided]
    },

    refused (c: Candidate): void {
      avoid.set(c.peerId, init.clock.now() + AVOID_MS)
    },

    watch (peerId, onLost) {
      gossip()
      let calls = inFlight.get(peerId)
      if (calls === undefined) inFlight.set(peerId, calls = new Set())
      calls.add(onLost)
      return () => {
        calls.delete(onLost)
        if (calls.size === 0) inFlight.delete(peerId)
      }
    },

    nextChange (signal: AbortSignal): Promise<void> {
      const replica = gossip().replica
      return new Promise((resolve, reject) => {
        const off = replica.onChange(() => { done(); resolve() })
        const onAbort = (): void => { done(); reject(signal.reason) }
        const done = (): void => { off(); signal.removeEventListener('abort', onAbort) }
        if (signal.aborted) { onAbort(); return }
        signal.addEventListener('abort', onAbort, { once: true })
      })
    },

    callRemote (c, args, o) {
      // Not async: the client's promise is returned as is (one frame less on every call).
      try {
        return sendTo(c, args, o)
      } catch (err) {
        return Promise.reject(err)
      }
    },

    async callLocal (tool, args, signal, headers, onPart) {
      if (init.callLocal === undefined) throw new MeshError('MESH_ERR_CALL_NO_PROVIDER', `tool ${tool} is not served by this process`)
      return await init.callLocal(tool, args, signal, headers, onPart)
    },

    offered (): string[] {
      const out = new Set<string>()
      for (const m of gossip().replica.members()) {
        if (m.liveness === 'dead' || m.liveness === 'left' || m.advert.status === 'draining') continue
        for (const t of m.advert.tools) out.add(t.capability)
      }
      return [...out].sort()
    },
  }
}

/**
 * The top tier in the order `balance` asks for, from its round-robin rotation: as is; by calls in
 * flight from this caller (least outstanding; ties keep the rotation); or the better of two drawn
 * at random, by latency times calls in flight (power of two choices, as Linkerd and Finagle
 * balance), first.
 */
function balanced (top: Candidate[], balance: Balance, load: Breakers): Candidate[] {
  if (balance === 'least-outstanding') return top.map((c, i) => ({ c, i, n: load.inflight(c.peerId) })).sort((a, b) => a.n - b.n || a.i - b.i).map((x) => x.c)
  if (balance !== 'p2c') return top
  const a = Math.floor(Math.random() * top.length)
  const b = (a + 1 + Math.floor(Math.random() * (top.length - 1))) % top.length
  const cost = (c: Candidate): number => (load.latency(c.peerId) + 1) * (load.inflight(c.peerId) + 1)
  const best = cost(top[b]) < cost(top[a]) ? b : a
  return [top[best], ...top.filter((_, i) => i !== best)]
}

/** `top` in groups of equal distance, nearest first (one group when all are as near). */
function nearestFirst (top: Candidate[], distance: (c: Candidate) => number): Candidate[][] {
  const groups: Candidate[][] = [[], [], [], []]
  for (const c of top) groups[distance(c)].push(c)
  return groups.filter((g) => g.length > 0)
}

/** The turn of `key`, counted up; the least recently used key is dropped past MAX_KEYS. */
function nextTurn (turns: Map<string, number>, key: string): number {
  const turn = turns.get(key) ?? 0
  // Re-inserting on use keeps Map order least recently used first.
  turns.delete(key)
  turns.set(key, turn + 1)
  if (turns.size > MAX_KEYS) turns.delete(turns.keys().next().value as string)
  return turn
}
