import { randomBytes } from 'node:crypto'
import { systemClock } from '../clock.ts'
import { McpHttpClient } from '../proxy/mcp-client.ts'
import { createCaller } from '../proxy/caller.ts'
import { createMeshTool } from '../proxy/mesh-tool.ts'
import { Exit, UsageError, commaList, painter, parse } from './args.ts'
import { common, observe } from './observe.ts'
import { cliTls } from './identity.ts'
import { escapeControls, printable, toJson } from './print.ts'

export const CALL_HELP = `Usage: meshctl call <capability> [json-arguments] [options]

Resolves <capability> exactly as an agent would, calls the chosen provider directly over MCP and
prints the result, then which agent served it. A provider that refuses the connection is skipped
for the next one.
  --tags <list>          tag (required), +tag (preferred), -tag (excluded), a|b (one of)
  --version <range>      a semver range, for example ^1.2
  --call-timeout <ms>    how long the call may take (default 30000)
  --trace                traces the call (sampled, whatever the agents' sampling) and prints its
                         trace ID, for \`meshctl trace <id>\`
  --json                 print {"result", "provider", "ms"} as JSON (and "traceId" with --trace)
  --cert, --key, --ca     the SVID, key and trust bundle to call with (default: a 10-minute SVID
                         from the local CA in MCP_MESH_HOME)
  --bootstrap, --mesh, --timeout (join timeout, ms) as for every command

Example: meshctl call plan_trip '{"destination":"Lisbon","dates":"May 3-7"}'
Exit codes: 0 ok, 1 the call failed (tool error, timeout, refused), 2 usage, 3 mesh unreachable,
4 no provider.`

/** `meshctl call`: one call through the mesh from the command line. */
export async function call (argv: string[]): Promise<number> {
  const { values, positionals } = parse(argv, { ...common, tags: { type: 'string', multiple: true }, version: { type: 'string' }, 'call-timeout': { type: 'string' }, trace: { type: 'boolean' } })
  if (values.help === true) { console.log(CALL_HELP); return Exit.ok }
  const [capability, json] = positionals
  if (capability === undefined) throw new UsageError('call needs a capability, for example: meshctl call weather \'{"destination":"Oslo"}\'')
  let args: Record<string, unknown> = {}
  if (json !== undefined) {
    try {
      args = JSON.parse(json) as Record<string, unknown>
    } catch (err) {
      throw new UsageError(`the arguments are not JSON (${(err as Error).message}); quote them, for example '{"city":"Oslo"}'`)
    }
    if (typeof args !== 'object' || args === null || Array.isArray(args)) throw new UsageError('the arguments must be a JSON object')
  }
  const callTimeoutMs = Number(values['call-timeout'] ?? 30_000)
  if (!Number.isInteger(callTimeoutMs) || callTimeoutMs <= 0) throw new UsageError(`--call-timeout must be a positive number of milliseconds, got "${values['call-timeout']}"`)
  const tags = commaList(values.tags).map((t) => t.includes('|') ? t.split('|') : t)
  const spec = { capability, ...(tags.length > 0 ? { tags } : {}), ...(values.version !== undefined ? { version: values.version } : {}) }

  const tls = await cliTls(values)
  const node = await observe(values, tls)
  const client = new McpHttpClient({ clientName: 'meshctl', ...(tls === undefined ? {} : { tls: { trustDomain: tls.trustDomain, context: () => tls.context } }) })
  const stop = new AbortController()
  try {
    const context = createCaller({ gossip: () => node, client, clock: systemClock, settleUntil: () => 0, callTimeoutMs, stopSignal: stop.signal, ...(tls === undefined ? {} : { trustDomain: tls.trustDomain }) })
    // A sampled W3C trace context of our own: the first agent's span is the root the agents keep.
    const traceId = values.trace === true ? randomBytes(16).toString('hex') : undefined
    const headers = traceId === undefined ? undefined : { traceparent: `00-${traceId}-${randomBytes(8).toString('hex')}-01` }
    const started = performance.now()
    const { result, provider } = await createMeshTool(capability, spec, context).invoke(args, headers === undefined ? {} : { headers }).catch((err: unknown) => {
      // A failed call's trace is the one worth reading.
      if (traceId !== undefined) console.error(`trace ${traceId}`)
      throw err
    })
    const ms = Math.round((performance.now() - started) * 10) / 10
    if (values.json === true) {
      console.log(toJson({ result, provider, ms, ...(traceId === undefined ? {} : { traceId }) }))
    } else {
      // The result and the provider's names come from another member: escaped, as every mesh string.
      console.log(typeof result === 'string' ? escapeControls(result, true) : toJson(result))
      const p = painter()
      const by = printable(provider)
      console.log(p.dim(`served by ${by.agent} (${by.tool} at ${by.endpoint ?? 'in process'}) in ${ms} ms`))
      if (traceId !== undefined) console.log(`trace ${traceId}`)
    }
    return Exit.ok
  } finally {
    stop.abort()
    await client.close()
    await node.stop()
  }
}
