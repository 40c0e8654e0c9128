import { StdioServerTransport } from '@modelcontextprotocol/sdk/server/stdio.js'
import { systemClock } from '../clock.ts'
import { loadGatewayConfig, toolSetFilter } from '../gateway/config.ts'
import { createGateway } from '../gateway/gateway.ts'
import type { Gateway } from '../gateway/gateway.ts'
import { isLoopback, serveHttp } from '../gateway/http.ts'
import type { GatewayHttp } from '../gateway/http.ts'
import { McpHttpClient } from '../proxy/mcp-client.ts'
import { createPinGuard } from '../proxy/pins.ts'
import type { PinGuard } from '../proxy/pins.ts'
import { Exit, UsageError, commaList, parse } from './args.ts'
import { cliTls } from './identity.ts'
import { common, observe } from './observe.ts'
import { approveCommand, pinsFileOf } from './pin.ts'

export const GATEWAY_HELP = `Usage: meshctl gateway [options]

Serves the mesh's capabilities as one MCP server, for MCP hosts (Claude Desktop, IDEs) that have
no mesh identity: one tool per capability, named by it, its definition from the provider the mesh
would choose. Hosts are told (tools/list_changed) when the tools change. Calls go through the mesh
like an agent's: failover, retries, deadlines; a tool's log messages, sampling and elicitation
requests reach the host (as far as it declared them), and its answers the tool.
  --http [host:]port      serve Streamable HTTP at http://host:port/mcp instead of stdio (host
                          127.0.0.1 by default; port 0 picks one; the URL is printed on stderr)
  --token <token>         bearer token HTTP clients must send (env MCP_MESH_GATEWAY_TOKEN);
                          required when --http binds to a host other than loopback
  --capability <list>     only these capabilities
  --tags <list>           tag (required), +tag (preferred), -tag (excluded), a|b (one of)
  --call-timeout <ms>     how long a call may take, unless its provider recommends (default 30000)
  --pins <file>           where tool definitions are pinned (default <home>/pins/gateway.json,
                          MCP_MESH_HOME): the first definition seen of each capability is trusted
                          and pinned; a provider that advertises another is withheld until
                          meshctl pin approve <capability> (see meshctl pin --help)
  --no-pin                UNSAFE: no pinning; a provider can change what hosts' models read at
                          any time, unseen (the "rug pull")
  --config <file>         JSON: named tool sets, { "toolSets": { "<name>": { "capabilities": [...],
                          "tags": [...] } } }, and defaults for capabilities, tags,
                          callTimeoutMs, bootstrap and mesh (flags win)
  --tool-set <name>       serve only that set of the config over stdio (over HTTP every set is
                          served at /mcp/<name> beside /mcp)
  --cert, --key, --ca     the SVID, key and trust bundle (default: an SVID from the local CA in
                          MCP_MESH_HOME, renewed while the gateway runs)
  --bootstrap, --mesh, --timeout (join timeout, ms) as for every command

Example (Claude Desktop): { "mcpServers": { "mesh": { "command": "npx", "args": ["meshctl", "gateway", "--bootstrap", "/ip4/..."] } } }
Stops on the end of stdin (stdio), SIGINT or SIGTERM. Exit codes: 0 stopped, 1 failed (a corrupt
pin file: MESH_ERR_PIN_FILE), 2 usage, 3 mesh unreachable.`

/** How often the gateway renews the identity `cliTls` gives it (which lives 10 minutes). */
const RENEW_MS = 4 * 60_000

/** `--http [host:]port` as host and port (loopback when no host is given). */
export function parseListen (value: string): { host: string, port: number } {
  const m = /^(?:(\[[^\]]+\]|[^:]+):)?(\d+)$/.exec(value)
  const port = Number(m?.[2])
  if (m === null || !Number.isInteger(port) || port > 65_535) throw new UsageError(`--http takes [host:]port, for example 127.0.0.1:8080 or 8080, got "${value}"`)
  return { host: m[1] ?? '127.0.0.1', port }
}

/**
 * The gateway's pins, read before it joins (a corrupt file stops it: MESH_ERR_PIN_FILE). Withheld
 * providers and failures to write are told on stderr, for the operator.
 */
async function gatewayPins (file: string | undefined): Promise<PinGuard> {
  const path = pinsFileOf({ pins: file })
  const pins = createPinGuard({
    file: path,
    clock: systemClock,
    approveCommand: (capability) => approveCommand(capability, path),
    onWithheld: (v, c) => { console.error(`meshctl gateway: withheld ${v.capability} of ${c.agent} (${v.spiffeId ?? `peer ${c.peerId}`}): its ${v.changed.join(', ')} changed since pinned; to show it to hosts: ${v.approve}`) },
    onError: (err) => { console.error(`meshctl gateway: pins: ${(err as Error).message}`) },
  })
  await pins.load()
  console.error(`meshctl gateway: pinning tool definitions in ${path} (trust on first use)`)
  return pins
}

/** `meshctl gateway`: the mesh as one MCP server over stdio or Streamable HTTP. */
export async function gateway (argv: string[]): Promise<number> {
  const { values } = parse(argv, { ...common, http: { type: 'string' }, token: { type: 'string' }, capability: { type: 'string', multiple: true }, tags: { type: 'string', multiple: true }, 'call-timeout': { type: 'string' }, pins: { type: 'string' }, 'no-pin': { type: 'boolean' }, config: { type: 'string' }, 'tool-set': { type: 'string' } })
  if (values.help === true) { console.error(GATEWAY_HELP); return Exit.ok } // stdout belongs to MCP
  // The file's settings are defaults: a flag on the command line wins.
  const config = values.config === undefined ? undefined : await loadGatewayConfig(values.config)
  values.mesh ??= config?.mesh
  values.bootstrap ??= config?.bootstrap
  values['call-timeout'] ??= config?.callTimeoutMs?.toString()
  const sets = Object.entries(config?.toolSets ?? {})
  const setName = values['tool-set']
  if (setName !== undefined) {
    if (!sets.some(([n]) => n === setName)) throw new UsageError(`no tool set "${setName}"${values.config === undefined ? ': give the --config file that names it' : ` in ${values.config}: it names ${sets.map(([n]) => n).join(', ') || 'none'}`}`)
    if (values.http !== undefined) throw new UsageError(`--tool-set goes with stdio: over HTTP every set is served at /mcp/<name>`)
    if (values.capability !== undefined || values.tags !== undefined) throw new UsageError('--tool-set brings its own capabilities and tags: drop --capability and --tags')
  }
  const listen = values.http === undefined ? undefined : parseListen(values.http)
  const token = values.token ?? (process.env.MCP_MESH_GATEWAY_TOKEN === '' ? undefined : process.env.MCP_MESH_GATEWAY_TOKEN)
  if (listen !== undefined && !isLoopback(listen.host) && token === undefined) {
    throw new UsageError(`--http ${values.http} binds beyond this machine: give a bearer token (--token or MCP_MESH_GATEWAY_TOKEN), or bind to 127.0.0.1`)
  }
  if (values.token !== undefined && listen === undefined) throw new UsageError('--token goes with --http (stdio needs none: the host launched the gateway)')
  const callTimeoutMs = Number(values['call-timeout'] ?? 30_000)
  if (!Number.isInteger(callTimeoutMs) || callTimeoutMs <= 0) throw new UsageError(`--call-timeout must be a positive number of milliseconds, got "${values['call-timeout']}"`)
  const tags = values.tags === undefined ? config?.tags ?? [] : commaList(values.tags).map((t) => t.includes('|') ? t.split('|') : t)
  const filter = setName !== undefined
    ? toolSetFilter(config!.toolSets[setName])
    : { capabilities: values.capability === undefined ? config?.capabilities ?? [] : commaList(values.capability), tags }
  if (values['no-pin'] === true && values.pins !== undefined) throw new UsageError('--no-pin and --pins exclude each other')
  const pins = values['no-pin'] === true ? undefined : await gatewayPins(values.pins)
  if (pins === undefined) console.error('meshctl gateway: WARNING: pinning is off (--no-pin): a provider can change the tool definitions hosts\' models read at any time, unseen')

  const tls = await cliTls(values)
  const node = await observe(values, tls).catch(async (err: unknown) => { await pins?.stop(); throw err })
  const client = new McpHttpClient({ clientName: 'meshctl-gateway', ...(tls === undefined ? {} : { tls: { trustDomain: tls.trustDomain, context: () => tls.context } }) })
  const gatewayOf = (f: typeof filter): Gateway => createGateway({ node, client, clock: systemClock, callTimeoutMs, filter: f, ...(tls === undefined ? {} : { trustDomain: tls.trustDomain }), ...(pins === undefined ? {} : { pins }) })
  const gw = gatewayOf(filter)
  // Over HTTP each set is a gateway of its own (the pins shared): its own list, told only of its own changes.
  const setGateways = new Map(listen === undefined ? [] : sets.map(([n, s]) => [n, gatewayOf(toolSetFilter(s))]))
  // A host keeps its gateway for days; the command's identity lives minutes: renew it in place.
  const renew = tls === undefined
    ? undefined
    : setInterval(() => {
      cliTls(values).then(async (fresh) => { Object.assign(tls, fresh!); await node.reprove() })
        .catch((err: unknown) => { console.error(`meshctl gateway: could not renew the identity: ${(err as Error).message}`) })
    }, RENEW_MS)
  const stopped = Promise.withResolvers<void>()
  const stop = (): void => { stopped.resolve() }
  process.once('SIGINT', stop)
  process.once('SIGTERM', stop)
  let http: GatewayHttp | undefined
  try {
    if (listen === undefined) {
      // The host closing our stdin is how it ends the session.
      process.stdin.once('end', stop)
      process.stdin.once('close', stop)
      await gw.server().connect(new StdioServerTransport())
      console.error(`meshctl gateway: serving ${gw.tools().length} tools over stdio${setName === undefined ? '' : ` (tool set ${setName})`}`)
    } else {
      http = await serveHttp(gw, { ...listen, sets: setGateways, ...(token === undefined ? {} : { token }) })
      console.error(`meshctl gateway: serving ${gw.tools().length} tools at ${http.url}`)
      for (const [n, g] of setGateways) console.error(`meshctl gateway: tool set ${n}: ${g.tools().length} tools at ${http.url}/${n}`)
    }
    await stopped.promise
    return Exit.ok
  } finally {
    process.off('SIGINT', stop)
    process.off('SIGTERM', stop)
    process.stdin.off('end', stop)
    process.stdin.off('close', stop)
    if (renew !== undefined) clearInterval(renew)
    await Promise.all([gw, ...setGateways.values()].map(async (g) => { await g.stop() }))
    await pins?.stop()
    await http?.close()
    await client.close()
    await node.stop()
  }
}
