import { homedir } from 'node:os'
import { join } from 'node:path'
import { z } from 'zod'
import { MeshError } from './errors.ts'
import { HeaderPatternSchema } from './proxy/headers.ts'
import { ZoneSchema } from './topology/advert.ts'

const ms = z.number().int().positive()

/**
 * Timing of failure detection and anti-entropy. The defaults serve a LAN, one host and a WAN:
 * probe timeouts follow each peer's measured round trip (see `probeTimeoutMs`).
 *
 * Detection of a crashed agent whose neighbours see its sockets close: a probe within about
 * 225 ms, refused at once, then `suspicionMinTimeoutMs` once its neighbours confirm (about 1.6 s).
 * Of a hung agent: up to a probe period before a neighbour probes it, the direct and indirect
 * probe timeouts, then the same.
 */
export const TimingSchema = z.object({
  /** Probing runs once per interval (SWIM's protocol period), jittered at start. */
  probeIntervalMs: ms.default(500),
  /**
   * Every connected neighbour is probed once per period: each tick probes
   * ceil(neighbours * probeIntervalMs / probePeriodMs) of them, round robin, at most
   * `maxProbesPerTick`. A probe is one frame on a long-lived stream per neighbour.
   */
  probePeriodMs: ms.default(1_000),
  /**
   * The cap that usually applies: with 3 per 500 ms tick a node sends at most 6 probes a second
   * whatever its degree, so each member is probed about 6 times a second by its neighbours in all
   * (each of its d neighbours every d/6 s). Probing then costs every node the same at any mesh size.
   * The model simulation (BENCHMARKS.md) measured, at 1,000 nodes, half the probe CPU of a cap of 8
   * with a hung agent still dropped in 1.7 to 1.8 s; a cap of 2 left a just-joined agent with 3
   * neighbours, hung, undetected for up to 3.4 s (2.8 s with 3, 2.4 s with 8).
   */
  maxProbesPerTick: z.number().int().min(1).max(64).default(3),
  /**
   * Lifeguard's local health awareness: a node that looks slow to itself (helpers did not answer its
   * indirect probes, or it had to refute) multiplies its probe timeouts by up to 1 + this, and probes
   * less, so an overloaded host does not accuse healthy peers. Each good probe lowers it again.
   */
  maxHealthMultiplier: z.number().int().min(0).max(16).default(8),
  /**
   * A direct probe (ping, ack) must be answered within this at least; each neighbour's timeout
   * adapts to its measured round trip (smoothed RTT + 4 deviations, as TCP does, plus one TCP
   * retransmission), up to the max. A peer with no sample yet is judged by every round trip this
   * node has measured; a node with none at all waits the max.
   */
  probeTimeoutMs: ms.default(300),
  maxProbeTimeoutMs: ms.default(3_000),
  /** Indirect probes (through `indirectProbes` other members) must be answered within this. */
  indirectProbeTimeoutMs: ms.default(400),
  /** How many other members are asked to probe a member that missed a direct probe. */
  indirectProbes: z.number().int().min(0).max(16).default(3),
  /**
   * Lifeguard suspicion timeout: starts at the max and shrinks towards the min as independent
   * members confirm the suspicion: max - (max - min) * log(C + 1) / log(K + 1), C confirmations,
   * K = `suspicionConfirmations`, or fewer for a member with fewer other neighbours (only
   * neighbours confirm; its acks say how many it has). One liar alone waits the full max, long
   * enough to be refuted.
   */
  // 1.5 s, not Lifeguard's 1 s: a just-started agent starved of CPU on a busy host refuted up to
  // 600 ms after a 1 s minimum and was declared dead for a moment (BENCHMARKS.md, "Start-up false deaths").
  suspicionMinTimeoutMs: ms.default(1_500),
  suspicionMaxTimeoutMs: ms.default(6_000),
  suspicionConfirmations: z.number().int().min(1).max(32).default(3),
  /** Anti-entropy: every interval, exchange a digest with one random member (one hash when equal). */
  antiEntropyIntervalMs: ms.default(2_000),
  /** Connection upkeep: dial random members while below `minConnections`; redial dead members. */
  maintainIntervalMs: ms.default(1_000),
  /**
   * Dead members are redialled (one per upkeep tick) with a backoff that doubles from 1 s up to
   * this. It bounds how long a healed partition waits for its first bridge: measured in the
   * simulation, a 30 s cap left halves apart for up to 23 s after the heal.
   */
  redialMaxBackoffMs: ms.default(4_000),
  /** Adverts are re-issued (seq + 1) after half this; older adverts are refused (replays). */
  maxAdvertAgeMs: ms.default(60 * 60_000),
  /** Adverts dated further in the future than this are refused (clock skew allowance). */
  maxClockSkewMs: ms.default(5 * 60_000),
  /** Dead and left members are remembered this long, so their old adverts cannot come back. */
  tombstoneMs: ms.default(2 * 60 * 60_000),
  /** Join: first retry delay, doubled up to 5 s, until a bootstrap or seed peer answers sync. */
  joinRetryMs: ms.default(200),
}).strict()

/** Limits that protect a node from its peers. */
export const QuotaSchema = z.object({
  /** Advert changes accepted per peer per minute (a token bucket; burst = `advertBurst`). */
  advertsPerMinute: z.number().int().positive().default(30),
  advertBurst: z.number().int().positive().default(10),
  /** Sync requests served per peer per minute. */
  syncPerMinute: z.number().int().positive().default(120),
  /** Largest gossip or sync frame accepted, in bytes. */
  maxMessageBytes: z.number().int().min(1024).max(4 * 1024 * 1024).default(64 * 1024),
  /** Entries per sync page. */
  syncPageSize: z.number().int().min(1).max(1_000).default(200),
  /**
   * Members a replica holds at most, tombstones included. At the cap a new member takes the place
   * of the oldest tombstone, or is refused (counted as `member-cap`) when there is none: a flood
   * of fresh keys stops here. 20,000 leaves room for 10,000 agents and their churn, at about
   * 2 to 3 KB a member.
   */
  maxMembers: z.number().int().min(16).default(20_000),
  /**
   * Probe frames (pings and requests to probe another member) served per peer per second. An
   * honest neighbour sends at most a few: a node sends 6 probes a second in all, and each failed
   * probe asks 3 helpers. Frames over the quota get no answer and are counted.
   */
  probeFramesPerSecond: z.number().int().positive().default(20),
  /**
   * Dials this node makes to one member per minute (upkeep, probes, redials), each trying at most
   * `maxDialAddrs` of its advertised addresses: a member cannot turn the mesh into a port scanner
   * of the addresses it advertises. Redialling a healed partition uses about 15 a minute.
   */
  dialsPerMemberPerMinute: z.number().int().positive().default(20),
  maxDialAddrs: z.number().int().min(1).max(16).default(4),
}).strict()

/** Options of the gossip host, shared by agents, bootstraps and observers. */
export const GossipOptionsSchema = z.object({
  /** The mesh name: meshes with other names never mix (topics, protocols and signatures carry it). */
  mesh: z.string().min(1).max(64).regex(/^[a-zA-Z0-9._-]+$/, 'letters, digits, dot, dash and underscore only').default('default'),
  /** Agent name, as in its SPIFFE ID later. */
  name: z.string().min(1).max(128).regex(/^[a-zA-Z0-9._-]+$/, 'letters, digits, dot, dash and underscore only'),
  role: z.enum(['agent', 'bootstrap', 'observer']).default('agent'),
  /** Multiaddrs to bind. Loopback by default: a newcomer's node is not reachable from the network. */
  listen: z.array(z.string()).default(['/ip4/127.0.0.1/tcp/0']),
  /** Multiaddrs to advertise instead of the bound ones (containers, NAT). */
  announce: z.array(z.string()).default([]),
  /** Bootstrap nodes or any agent in the mesh (multiaddrs with /p2p/<peer id>). */
  bootstrap: z.array(z.string()).default([]),
  /** Where the libp2p key is kept (stable peer ID across restarts). Unset: `<home>/keys/<name>.key`. */
  keyFile: z.string().optional(),
  /** Ephemeral identity: a new key every start (observers such as `meshctl list`). */
  ephemeralKey: z.boolean().default(false),
  /** Base folder for keys and state. */
  home: z.string().default(join(homedir(), '.mcp-mesh')),
  /** Keep at least this many connections to random members (gossip and probing need neighbours). */
  minConnections: z.number().int().min(1).max(64).default(6),
  /**
   * Disable gossipsub's IP-colocation penalty: needed when many nodes share one IP (one host,
   * tests, simulations), since past about 10 peers on 127.0.0.1 every score goes negative and
   * messages stop. Keep it off (protection on) in production.
   */
  colocated: z.boolean().default(false),
  timing: TimingSchema.default(TimingSchema.parse({})),
  quota: QuotaSchema.default(QuotaSchema.parse({})),
}).strict()

/** Validated gossip options. */
export type GossipOptions = z.infer<typeof GossipOptionsSchema>
/** Gossip options as a caller writes them (defaults optional). */
export type GossipOptionsInput = z.input<typeof GossipOptionsSchema>

/** The agent's MCP endpoint (Streamable HTTP). */
export const HttpOptionsSchema = z.object({
  /** Interface to bind. Loopback by default: nothing is exposed until you choose to. */
  host: z.string().min(1).default('127.0.0.1'),
  /** Port to bind; 0 takes any free port (the advert carries the real one). */
  port: z.number().int().min(0).max(65_535).default(0),
  /** Host name or IP put in the advertised URL, when callers must use another than `host`. */
  announceHost: z.string().min(1).optional(),
  /**
   * Host names accepted in requests' Host header (DNS-rebinding protection). Default: when bound
   * to loopback, only localhost, 127.0.0.1 and [::1]; otherwise any (identity checks callers).
   */
  allowedHosts: z.array(z.string().min(1)).optional(),
  /** Largest request body accepted (413 above): 4 MiB, as the stock SDK. */
  maxBodyBytes: z.number().int().min(1024).default(4 * 1024 * 1024),
  /**
   * JSON-RPC requests served at once, each counted until its answer: a POST over the limit is
   * refused whole with 503 MESH_ERR_SERVER_BUSY before anything runs (a batch counts every
   * request in it), so callers fail over. Responses and notifications (a caller's answers to
   * sampling or elicitation, its cancellations) count for nothing. Also the most POST bodies
   * read at once, each counted from its first byte: one more is refused with the same 503.
   */
  maxConcurrentCalls: z.number().int().min(1).default(256),
  /**
   * A connection must deliver complete request headers within this, counted from when it opens
   * (a connection that sends nothing is closed) and again from each request's first byte (Node's
   * `headersTimeout`, 408 and close). Ten seconds is ample for headers of a few hundred bytes
   * and cuts a slowloris that trickles them; Node's default is 60 s.
   */
  headersTimeoutMs: ms.default(10_000),
  /**
   * A request (headers and body) must arrive whole within this (Node's `requestTimeout`, 408 and
   * close); the tool's run time does not count. Thirty seconds carries a full `maxBodyBytes` body
   * (4 MiB) at 1.2 Mbit/s and cuts a body that trickles in; Node's default is 300 s.
   */
  requestTimeoutMs: ms.default(30_000),
  /**
   * Open connections accepted at once (Node's `maxConnections`); more are closed at once, before
   * a byte is read, and a mesh caller fails over. Four connections per concurrent call: enough
   * for the keep-alive pools of many callers, while idle and half-open sockets stay bounded.
   */
  maxConnections: z.number().int().min(1).default(1_024),
  /**
   * Bytes of a streamed (SSE) answer the endpoint holds for a client that does not read: past it
   * the stream is dropped and the call's handler aborted. Without a bound, a client that never
   * reads makes the agent buffer a chatty tool's progress and logs without end.
   */
  maxUnreadBytes: z.number().int().min(16 * 1024).default(1024 * 1024),
  /**
   * A client that reads none of a full write buffer for this long is cut off (the answer
   * dropped, the handler aborted): as long as a call's default timeout, after which a mesh caller
   * has given up anyway.
   */
  slowReaderTimeoutMs: ms.default(30_000),
}).strict()

/** Validated endpoint options. */
export type HttpOptions = z.infer<typeof HttpOptionsSchema>

/**
 * The Prometheus endpoint (`GET /metrics`, the text format): off unless a port is given. It
 * carries no identity (plain HTTP, no client certificates), so it binds loopback by default:
 * expose it only where the scraper is the only one who can reach it.
 */
export const MetricsOptionsSchema = z.object({
  /** Port to serve `/metrics` on; 0 takes any free port (`node.metricsUrl` says which). Unset: no endpoint. */
  port: z.number().int().min(0).max(65_535).optional(),
  /** Interface to bind: loopback, so only a scraper on the same host reaches it. */
  host: z.string().min(1).default('127.0.0.1'),
}).strict()

/** Validated metrics endpoint options. */
export type MetricsOptions = z.infer<typeof MetricsOptionsSchema>

/** Trust domain names: lower-case letters, digits, dot, dash and underscore (SPIFFE). */
const trustDomain = z.string().min(1).max(255).regex(/^[a-z0-9._-]+$/, 'lower-case letters, digits, dot, dash and underscore only (a SPIFFE trust domain)')

/**
 * Mutual TLS on the agent's endpoint and its calls (`MCP_MESH_TLS_*`). `auto` issues the agent a
 * short-lived SPIFFE identity from the local CA in `home` (created on first use; single host and
 * development: any process that can read the CA key can mint identities); `file` reads it from
 * certificate files written by SPIRE, Vault or cert-manager, and watches them for renewals.
 */
export const TlsOptionsSchema = z.object({
  /** `strict`: every call is mutually authenticated; `off`: plain HTTP (no identity). */
  mode: z.enum(['strict', 'off']).default('strict'),
  provider: z.enum(['auto', 'file', 'vault', 'spire']).default('auto'),
  /** `spire`: the SPIFFE Workload API's unix socket (a SPIRE agent), `unix:///path` or a path. */
  spireSocket: z.string().min(1).optional(),
  trustDomain: trustDomain.default('mcp-mesh.local'),
  /** `file`: the SVID, its private key (mode 0600) and the trust domain's CA bundle, as PEM. */
  certFile: z.string().min(1).optional(),
  keyFile: z.string().min(1).optional(),
  bundleFile: z.string().min(1).optional(),
  /** `auto` and `vault`: how long each SVID lives; renewed at half-life. 24 h by default. */
  svidTtlMs: ms.min(60_000).default(24 * 3600_000),
  /** `vault`: Vault's PKI secrets engine (its API: `POST /v1/<mount>/issue/<role>`). */
  vault: z.object({
    /** `VAULT_ADDR`. */
    addr: z.url({ protocol: /^https?$/ }).optional(),
    /** `VAULT_TOKEN`: a token allowed to write `<mount>/issue/<role>`. */
    token: z.string().min(1).optional(),
    /** `MCP_MESH_VAULT_PKI_MOUNT`: where the PKI engine is mounted. */
    mount: z.string().regex(/^[A-Za-z0-9._/-]+$/).default('pki'),
    /** `MCP_MESH_VAULT_ROLE`: the role that issues the mesh's SVIDs. */
    role: z.string().regex(/^[A-Za-z0-9._-]+$/).default('mcp-mesh'),
    /** `VAULT_CACERT`: the CA file of Vault's own TLS certificate, when not a public one. */
    caCert: z.string().min(1).optional(),
  }).strict().default({ mount: 'pki', role: 'mcp-mesh' }),
}).strict().superRefine((t, ctx) => {
  if (t.mode === 'strict' && t.provider === 'vault') {
    if (t.vault.addr === undefined) ctx.addIssue({ code: 'custom', path: ['vault', 'addr'], message: 'the vault provider needs Vault\'s address (VAULT_ADDR)' })
    if (t.vault.token === undefined) ctx.addIssue({ code: 'custom', path: ['vault', 'token'], message: 'the vault provider needs a token (VAULT_TOKEN)' })
  }
  if (t.mode === 'strict' && t.provider === 'spire' && t.spireSocket === undefined) {
    ctx.addIssue({ code: 'custom', path: ['spireSocket'], message: 'the spire provider needs the Workload API socket (MCP_MESH_SPIRE_SOCKET)' })
  }
  if (t.mode !== 'strict' || t.provider !== 'file') return
  for (const f of ['certFile', 'keyFile', 'bundleFile'] as const) {
    if (t[f] === undefined) ctx.addIssue({ code: 'custom', path: [f], message: `the file provider needs ${f} (MCP_MESH_TLS_${f === 'certFile' ? 'CERT' : f === 'keyFile' ? 'KEY' : 'CA'})` })
  }
})

/** Validated TLS options. */
export type TlsOptions = z.infer<typeof TlsOptionsSchema>

/** Circuit breaking (see `src/proxy/breaker.ts`), with Envoy's outlier-detection defaults. */
const BreakerSchema = z.object({
  consecutiveFailures: z.number().int().min(1).default(5),
  baseEjectionMs: z.number().int().min(0).default(30_000),
  maxEjectionMs: z.number().int().min(0).default(300_000),
  maxEjectionPercent: z.number().min(0).max(100).default(10),
  maxRequestsPerProvider: z.number().int().min(1).default(1_024),
}).strict()

/**
 * Tracing (OpenTelemetry): spans of every call kept in the agent for `meshctl trace`, exported
 * over OTLP when `OTEL_EXPORTER_OTLP_ENDPOINT` is set, sampled as `OTEL_TRACES_SAMPLER` says.
 */
const TracingSchema = z.object({
  /** `MCP_MESH_TRACING=off` turns spans off (trace context still travels on). */
  enabled: z.boolean().default(true),
  /** Finished spans the agent keeps (about 0.5 KB each); the oldest is overwritten. */
  spans: z.number().int().min(16).max(1_000_000).default(4_096),
  /** Spans older than this are not returned, in ms (15 minutes). */
  spanMaxAgeMs: z.number().int().positive().default(900_000),
  /**
   * Who may read this agent's spans besides its own trust domain: SPIFFE ID patterns, exact or
   * ending in `/*` (a partner's operators). With TLS off, anyone who reaches the endpoint.
   */
  readers: z.array(z.string().min(1)).max(64).default([]),
}).strict()

/** Options of `createMeshNode`: the gossip options plus the endpoint, calls and shutdown. */
export const MeshNodeOptionsSchema = GossipOptionsSchema.omit({ role: true }).extend({
  /** The agent's own version, shown in MCP `initialize` and `meshctl status`. */
  version: z.string().min(1).max(64).default('1.0.0'),
  http: HttpOptionsSchema.default(HttpOptionsSchema.parse({})),
  tls: TlsOptionsSchema.default(TlsOptionsSchema.parse({})),
  /** The Prometheus endpoint (off unless `port` is set); `node.metrics()` works either way. */
  metrics: MetricsOptionsSchema.default(MetricsOptionsSchema.parse({})),
  /**
   * After start, a call whose dependency has no provider yet waits up to this long for one to
   * appear (the first sync and the providers' adverts). MCP Mesh uses 20 s.
   */
  settleMs: z.number().int().min(0).default(20_000),
  /** Default timeout of one call (a dependency's `timeout` overrides it): 30 s, as MCP Mesh. */
  callTimeoutMs: ms.default(30_000),
  /**
   * Default retries of a call that failed after sending (the connection, a 5xx), for read-only
   * or idempotent tools only: 0, as MCP Mesh's `maxAttempts` 1. A dependency's or a call's
   * `retries` overrides it.
   */
  retries: z.number().int().min(0).max(10).default(0),
  /** The first retry backoff step, in ms (doubling each retry, full jitter): 100, as MCP Mesh. */
  retryDelayMs: z.number().int().min(0).default(100),
  /** The longest retry backoff step, in ms. */
  retryMaxDelayMs: z.number().int().min(0).default(2_000),
  /**
   * Inbound headers a tool handler's own calls carry on (exact names or `prefix*`,
   * case-insensitive; a bare `*` is refused); W3C `traceparent` and `tracestate` always do. Calls
   * to a partner's agents (another trust domain) carry only what `partnerHeaders` allows for it.
   */
  propagateHeaders: z.array(HeaderPatternSchema).max(64).default([]),
  /** Per partner trust domain, the propagated headers its agents may get (none by default: `authorization` never leaks to a partner). */
  partnerHeaders: z.record(z.string(), z.array(HeaderPatternSchema).max(64)).default({}),
  /**
   * Where this agent runs (`eu-west-1a`, a rack, a region), advertised: its calls go first to
   * equally ranked providers of its own zone and organisation (trust domain), then to others.
   */
  zone: ZoneSchema.optional(),
  /**
   * Default hedging of read-only and idempotent calls: after this many ms without an answer, a
   * second attempt goes to another provider and the first answer wins (off when absent).
   */
  hedgeAfterMs: z.number().int().positive().optional(),
  /** How calls spread among equally ranked providers: round robin, least outstanding, or power of two choices by latency. */
  balance: z.enum(['round-robin', 'least-outstanding', 'p2c']).default('round-robin'),
  /** Circuit breaking per provider, and the cap on calls in flight to one provider: Envoy's defaults. */
  breaker: BreakerSchema.default(BreakerSchema.parse({})),
  tracing: TracingSchema.default(TracingSchema.parse({})),
  /** On stop, calls in flight get this long to finish before the endpoint closes. */
  drainGraceMs: z.number().int().min(0).default(10_000),
  /** Run the drain on SIGTERM and SIGINT, then end the process by the same signal. */
  handleSignals: z.boolean().default(true),
  /**
   * Once idle after start, have V8 run one memory-reducing GC (memory saver mode, switched off
   * again after it): it returns the young-generation pages the join left resident, about 19 MB,
   * which V8 alone returns only after about 110 s (BENCHMARKS.md, "Memory").
   */
  trimHeap: z.boolean().default(true),
  /**
   * Where dependencies declared `pin: true` keep the tool definitions they pinned, and the changes
   * waiting for `meshctl pin approve` (`MCP_MESH_PINS_FILE`). Unset: `<home>/pins/agents/<name>.json`,
   * shared by the instances of one agent. Read on the first pinned resolution, checked each second.
   */
  pinsFile: z.string().min(1).optional(),
}).strict()

/** Validated mesh node options. */
export type MeshNodeOptions = z.infer<typeof MeshNodeOptionsSchema>
/** Mesh node options as a caller writes them (defaults optional). */
export type MeshNodeOptionsInput = z.input<typeof MeshNodeOptionsSchema>

const list = (v: string): string[] => v.split(',').map((s) => s.trim()).filter((s) => s !== '')
const bool = (v: string): boolean => /^(1|true|yes|on)$/i.test(v)
// Numbers are passed on as written when they do not parse, so the schema names the variable's field.
const num = (v: string): number | string => (/^-?\d+(\.\d+)?$/.test(v.trim()) ? Number(v) : v)
const seconds = (v: string): number | string => { const n = num(v); return typeof n === 'number' ? Math.round(n * 1000) : n }

/**
 * Environment variables, named like MCP Mesh's so its users feel at home. `key` is the option
 * path (dotted for nested options); gossip-only nodes ignore the node-only keys.
 */
export const EnvVars = {
  MCP_MESH_NAMESPACE: { key: 'mesh', parse: String },
  MCP_MESH_AGENT_NAME: { key: 'name', parse: String },
  MCP_MESH_LISTEN: { key: 'listen', parse: list },
  MCP_MESH_ANNOUNCE: { key: 'announce', parse: list },
  MCP_MESH_BOOTSTRAP: { key: 'bootstrap', parse: list },
  MCP_MESH_KEY_FILE: { key: 'keyFile', parse: String },
  MCP_MESH_PINS_FILE: { key: 'pinsFile', parse: String, node: true },
  MCP_MESH_HOME: { key: 'home', parse: String },
  MCP_MESH_COLOCATED: { key: 'colocated', parse: bool },
  MCP_MESH_HTTP_HOST: { key: 'http.host', parse: String, node: true },
  MCP_MESH_HTTP_PORT: { key: 'http.port', parse: num, node: true },
  MCP_MESH_HTTP_ANNOUNCE_HOST: { key: 'http.announceHost', parse: String, node: true },
  /** In seconds, as in MCP Mesh. */
  MCP_MESH_CALL_TIMEOUT: { key: 'callTimeoutMs', parse: seconds, node: true },
  MCP_MESH_SETTLE_MS: { key: 'settleMs', parse: num, node: true },
  MCP_MESH_DRAIN_GRACE_MS: { key: 'drainGraceMs', parse: num, node: true },
  MCP_MESH_TRIM_HEAP: { key: 'trimHeap', parse: bool, node: true },
  MCP_MESH_PROPAGATE_HEADERS: { key: 'propagateHeaders', parse: list, node: true },
  MCP_MESH_ZONE: { key: 'zone', parse: String, node: true },
  MCP_MESH_TRACING: { key: 'tracing.enabled', parse: (v: string) => (/^(1|true|yes|on)$/i.test(v) ? true : /^(0|false|no|off)$/i.test(v) ? false : v), node: true },
  MCP_MESH_TLS_MODE: { key: 'tls.mode', parse: String, node: true },
  MCP_MESH_TLS_PROVIDER: { key: 'tls.provider', parse: String, node: true },
  MCP_MESH_TRUST_DOMAIN: { key: 'tls.trustDomain', parse: String, node: true },
  MCP_MESH_TLS_CERT: { key: 'tls.certFile', parse: String, node: true },
  MCP_MESH_TLS_KEY: { key: 'tls.keyFile', parse: String, node: true },
  MCP_MESH_TLS_CA: { key: 'tls.bundleFile', parse: String, node: true },
  MCP_MESH_SPIRE_SOCKET: { key: 'tls.spireSocket', parse: String, node: true },
  VAULT_ADDR: { key: 'tls.vault.addr', parse: String, node: true },
  VAULT_TOKEN: { key: 'tls.vault.token', parse: String, node: true },
  VAULT_CACERT: { key: 'tls.vault.caCert', parse: String, node: true },
  MCP_MESH_VAULT_PKI_MOUNT: { key: 'tls.vault.mount', parse: String, node: true },
  MCP_MESH_VAULT_ROLE: { key: 'tls.vault.role', parse: String, node: true },
  MCP_MESH_METRICS_PORT: { key: 'metrics.port', parse: num, node: true },
  MCP_MESH_METRICS_HOST: { key: 'metrics.host', parse: String, node: true },
} as const

/** Log levels, most verbose first; `silent` writes nothing. */
export const LogLevelSchema = z.enum(['trace', 'debug', 'info', 'warn', 'error', 'silent'])
/** A log level (`MCP_MESH_LOG_LEVEL`). */
export type LogLevel = z.infer<typeof LogLevelSchema>

/**
 * The process's log level from `MCP_MESH_LOG_LEVEL` (case-insensitive): `info` when unset. It is
 * not an option of a node: every node and component in a process shares one root logger.
 * An invalid value fails with MESH_ERR_CONFIG_INVALID naming the variable.
 */
export function parseLogLevel (env: NodeJS.ProcessEnv = process.env): LogLevel {
  const raw = env.MCP_MESH_LOG_LEVEL?.trim().toLowerCase()
  if (raw === undefined || raw === '') return 'info'
  const parsed = LogLevelSchema.safeParse(raw)
  if (parsed.success) return parsed.data
  throw new MeshError('MESH_ERR_CONFIG_INVALID', `invalid MCP_MESH_LOG_LEVEL "${env.MCP_MESH_LOG_LEVEL}": expected one of ${LogLevelSchema.options.join(', ')}`, { details: { fields: ['MCP_MESH_LOG_LEVEL'], issues: parsed.error.issues } })
}

/** Reads `MCP_MESH_*` variables into partial options (explicit options win over them). */
export function optionsFromEnv (env: NodeJS.ProcessEnv = process.env, forNode = false): Record<string, unknown> {
  const out: Record<string, unknown> = {}
  for (const [variable, spec] of Object.entries(EnvVars)) {
    if ('node' in spec && !forNode) continue
    const raw = env[variable]
    if (raw === undefined || raw === '') continue
    const path = spec.key.split('.')
    let target = out
    for (const k of path.slice(0, -1)) target = (target[k] ??= {}) as Record<string, unknown>
    target[path[path.length - 1]] = spec.parse(raw)
  }
  return out
}

/** Validates gossip options once, at the boundary; a bad value fails with the field named. */
export function parseGossipOptions (input: GossipOptionsInput, env: NodeJS.ProcessEnv = process.env): GossipOptions {
  const o = parseWith(GossipOptionsSchema, 'mesh options', merge(optionsFromEnv(env), input))
  checkTiming(o.timing)
  parseLogLevel(env) // the logger only warns (it cannot fail a module's import): fail fast here
  return o
}

/** Validates `createMeshNode` options once; explicit options win over `MCP_MESH_*` variables. */
export function parseMeshNodeOptions (input: MeshNodeOptionsInput, env: NodeJS.ProcessEnv = process.env): MeshNodeOptions {
  const o = parseWith(MeshNodeOptionsSchema, 'mesh node options', merge(optionsFromEnv(env, true), input))
  checkTiming(o.timing)
  parseLogLevel(env)
  return o
}

function parseWith<S extends z.ZodType> (schema: S, what: string, input: unknown): z.infer<S> {
  const parsed = schema.safeParse(input)
  if (!parsed.success) {
    // An unknown key is reported on its parent object: name the key itself, so a typo is obvious.
    const fields = parsed.error.issues.flatMap((i) => i.code === 'unrecognized_keys'
      ? i.keys.map((k) => [...i.path, k].join('.'))
      : [i.path.join('.') || '(options)'])
    throw new MeshError('MESH_ERR_CONFIG_INVALID', `invalid ${what}: ${z.prettifyError(parsed.error)}`, { details: { fields, issues: parsed.error.issues } })
  }
  return parsed.data
}

function checkTiming (t: z.infer<typeof TimingSchema>): void {
  if (t.suspicionMinTimeoutMs > t.suspicionMaxTimeoutMs) {
    throw new MeshError('MESH_ERR_CONFIG_INVALID', 'invalid mesh options: timing.suspicionMinTimeoutMs must not exceed timing.suspicionMaxTimeoutMs', { details: { fields: ['timing.suspicionMinTimeoutMs'] } })
  }
}

/** Explicit options over environment ones; nested option objects merge one level deep. */
function merge (fromEnv: Record<string, unknown>, input: object): Record<string, unknown> {
  const out: Record<string, unknown> = { ...fromEnv }
  for (const [k, v] of Object.entries(input)) {
    if (v === undefined) continue
    const base = out[k]
    out[k] = isPlainObject(v) && isPlainObject(base) ? { ...base, ...v } : v
  }
  return out
}

function isPlainObject (v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v)
}
