import { isMeshError } from '../errors.ts'
import { Exit, UsageError } from './args.ts'
import { CA_HELP } from './ca-help.ts'
import { entity, ENTITY_HELP } from './entity.ts'
import { revoke, REVOKE_HELP } from './revoke.ts'
import { call, CALL_HELP } from './call.ts'
import { explain, EXPLAIN_HELP } from './explain.ts'
import { gateway, GATEWAY_HELP } from './gateway.ts'
import { list, LIST_HELP } from './list.ts'
import { pin, PIN_HELP } from './pin.ts'
import { escapeControls } from './print.ts'
import { status, STATUS_HELP } from './status.ts'
import { start, START_HELP } from './start.ts'
import { traceCommand, TRACE_HELP } from './trace.ts'

const HELP = `Usage: meshctl <command> [options]

Commands:
  start <agent files...>    runs agents as processes (and a local bootstrap when none is given)
  call <capability> [json]  calls a capability and prints the result and which agent served it
  status <agent>            one agent: liveness, endpoint, readiness, tools, dependencies
  list                      agents, capabilities, tags, versions, endpoints and liveness
  explain <capability>      how a dependency on <capability> resolves, and why
  ca <init|show|issue>      the local certificate authority: create it, show it, issue an X.509-SVID
  entity <register|list|revoke>  partner organisations whose agents this host's agents trust
  revoke <spiffe-id>        revokes an agent identity (or --cert <pem>: one certificate)
  trace <trace-id>          the tree of one trace, from the spans the agents keep (call --trace prints the ID)
  gateway                   serves the mesh's capabilities as one MCP server for hosts (stdio, or --http)
  pin <list|approve|forget> tool definitions pinned against silent changes (the gateway's, or an agent's)

Common options:
  --bootstrap <multiaddr>   a bootstrap or any agent of the mesh, repeatable (env MCP_MESH_BOOTSTRAP)
  --mesh <name>             mesh name (default "default"; env MCP_MESH_NAMESPACE)
  --timeout <ms>            how long to try to join (default 5000)
  --json                    machine-readable output
  --cert, --key, --ca <pem> the SVID, its key and the trust bundle to join and call with (list,
                            explain, call, status, gateway); without them meshctl issues itself a 10-minute SVID from
                            the local CA in MCP_MESH_HOME (env MCP_MESH_TLS_MODE=off: plain HTTP)
  -h, --help                help for a command

meshctl joins the mesh as an observer (no advert, a throwaway identity), takes a snapshot of the
topology and works from it. Exit codes: 0 ok, 1 failed, 2 usage error, 3 mesh unreachable,
4 no provider (explain, call), no such agent (status) or no change waiting (pin approve).
Run meshctl <command> --help for more.`

async function main (argv: string[]): Promise<number> {
  const [command, ...rest] = argv
  if (command === undefined || command === '-h' || command === '--help' || command === 'help') { console.log(HELP); return command === undefined ? Exit.usage : Exit.ok }
  if (command === 'list') return list(rest)
  if (command === 'call') return call(rest)
  if (command === 'status') return status(rest)
  if (command === 'start') return start(rest)
  if (command === 'explain') return explain(rest)
  if (command === 'ca') return (await import('./ca.ts')).ca(rest) // loads the X.509 library only when used
  if (command === 'entity') return entity(rest)
  if (command === 'revoke') return revoke(rest)
  if (command === 'trace') return traceCommand(rest)
  if (command === 'gateway') return gateway(rest)
  if (command === 'pin') return pin(rest)
  throw new UsageError(`unknown command "${command}"`)
}

main(process.argv.slice(2)).then((code) => { process.exitCode = code }, (err: unknown) => {
  if (err instanceof UsageError) {
    const helps: Record<string, string> = { list: LIST_HELP, explain: EXPLAIN_HELP, call: CALL_HELP, status: STATUS_HELP, start: START_HELP, ca: CA_HELP, entity: ENTITY_HELP, revoke: REVOKE_HELP, trace: TRACE_HELP, gateway: GATEWAY_HELP, pin: PIN_HELP }
    console.error(`meshctl: ${err.message}\n\n${helps[process.argv[2] ?? ''] ?? HELP}`)
    process.exitCode = Exit.usage
    return
  }
  // Error messages quote members' names, endpoints and answers: escaped like the rest of the output.
  if (isMeshError(err, 'MESH_ERR_RESOLVE_INVALID_SPEC')) { console.error(`meshctl: ${escapeControls(err.message, true)}`); process.exitCode = Exit.usage; return }
  console.error(`meshctl: ${isMeshError(err) ? `${err.code}: ` : ''}${escapeControls((err as Error).message, true)}`)
  process.exitCode = isMeshError(err, 'MESH_ERR_GATEWAY_CONFIG') ? Exit.usage : isMeshError(err, 'MESH_ERR_JOIN_FAILED') ? Exit.unreachable : isMeshError(err, 'MESH_ERR_CALL_NO_PROVIDER') || isMeshError(err, 'MESH_ERR_PIN_NOT_PENDING') ? Exit.noProvider : Exit.failure
})
